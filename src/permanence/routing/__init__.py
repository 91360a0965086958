"""Routing of incoming calls: the decision taken when a call arrives (``routing.hours``)."""
