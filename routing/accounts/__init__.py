"""Accounts and identity: match each lead to its account (CRM) and its person (issue 13)."""
