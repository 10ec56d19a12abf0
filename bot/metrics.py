"""Prometheus metrics, one registry per hub (so tests can run several hubs in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            "gongdan_inbound_events",
            "Inbound events by platform and outcome",
            ["platform", "outcome"],
            registry=r,
        )
        self.processed = Counter(
            "gongdan_processed_events",
            "Inbound events processed by outcome",
            ["outcome"],
            registry=r,
        )
        self.transitions = Counter(
            "gongdan_transitions", "Ticket transitions by action", ["action"], registry=r
        )
        self.tickets_created = Counter("gongdan_tickets_created", "Tickets created", registry=r)
        self.csat = Counter(
            "gongdan_csat_ratings",
            "Customers' ratings of closed tickets by stars (1-5); their comments as score=comment",
            ["score"],
            registry=r,
        )
        self.intake = Counter(
            "gongdan_intake_messages",
            "Customer messages by what the intake did with them (ticket, asked, comment, "
            "chase, slot, answered, ignored) and the chat's mode",
            ["outcome", "mode"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "gongdan_outbox_depth", "Outbox rows by state", ["state"], registry=r
        )
        self.send_seconds = Histogram(
            "gongdan_outbox_send_seconds",
            "Time of one platform send call",
            ["platform"],
            registry=r,
        )
        self.send_results = Counter(
            "gongdan_outbox_sends",
            "Send attempts by platform and result",
            ["platform", "result"],
            registry=r,
        )
        self.dead_letters = Counter(
            "gongdan_dead_letters", "Outbound messages given up on", ["platform"], registry=r
        )

        self.sla_events = Counter(
            "gongdan_sla_events",
            "SLA warnings, breaches and escalation steps by clock",
            ["event", "clock"],
            registry=r,
        )
        self.sla_sweep_seconds = Histogram(
            "gongdan_sla_sweep_seconds", "Time of one SLA sweep batch", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
