"""Change history and restore of integrations and queue settings, and governed queues' staged changes."""
