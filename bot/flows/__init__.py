"""Flows: what happens when a message, a voice note or a button press arrives, and what the
hub's own jobs (the SLA sweep, auto-close) decide.

Flows never name a platform and never touch the database: they run inside a unit of work
(``bot.unit``), read and change its records, and answer with platform-neutral ``Text`` /
``Card`` / ``Notice`` messages, which exist exactly when the changes they report do. Ticket
states change only through ``bot.lifecycle.apply``.
"""
