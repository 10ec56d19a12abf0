"""SLA policies, business calendars and clock arithmetic (no I/O); flows use them."""
