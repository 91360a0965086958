"""Routing of incoming calls: the decision taken when a call arrives (``routing.hours``:
opening hours, after hours, the on-call contact), then the in-hours leg: the provider's queue,
each operator's own device, presence, dispatch to the longest-idle available operator, and the
screen pop that follows the call (docs/telephony.md, ADR 0022 and 0023)."""
