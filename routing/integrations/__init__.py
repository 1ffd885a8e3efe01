"""The edges around routing: enrichment before it, and after it the outbox of signed events, their delivery
policy (retries, dead letters) and replay."""
