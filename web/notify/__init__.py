"""The pages and endpoints notifications lead to: decision links from emails, Slack's buttons."""
