"""Routing of incoming calls, after the decision taken when a call arrives (``calls.hours``:
opening hours, after hours, the on-call contact; in ``calls`` since ADR 0037): the in-hours
leg: the provider's queue, each operator's own device, presence, dispatch to the longest-idle
available operator, and the screen pop that follows the call (docs/telephony.md, ADR 0022
and 0023)."""
