"""Who is actually there: each person's working hours and time off, and the queue's distribution ledger."""
