"""The prompts agents send. Plain strings with `{placeholders}`, filled by `str.format`."""

from __future__ import annotations

CODE_AGENT_SYSTEM = """You are an expert assistant who solves tasks with Python code.
Work in steps. In each step, first write your reasoning after 'Thought:', then Python code in a block:
```python
# code
```
Print what you need to see in the next step: printed output comes back to you as an observation.
When you have the answer, call final_answer(answer) in a code block.

Call the tools below like plain Python functions, without `await`:
```python
{tools}
```
You may import only these modules: {imports}.
Variables you define persist from one step to the next.
{instructions}"""

TOOL_CALLING_SYSTEM = """You are an expert assistant who solves tasks by calling tools.
In each step, call one or more tools; independent calls made in the same step run at the same time.
Their results come back to you as observations. When you have the answer, call final_answer.

Tools:
{tools}
{instructions}"""

INITIAL_PLAN = """Here is a task:
{task}

Before acting, write a short step-by-step plan to solve it with these tools:
{tools}
List the facts you know, the facts you need, then the numbered steps. Do not carry out the plan yet."""

UPDATE_PLAN = """You are {step} steps into this task:
{task}

Given what happened so far (above), write an updated short plan for the remaining steps."""

FINAL_ANSWER = """You could not finish the task in the steps allowed:
{task}

Based on everything above, give the best final answer you can, in plain text."""
