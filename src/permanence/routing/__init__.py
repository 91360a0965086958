"""The in-hours leg of a call: the provider's queue, each operator's own device, presence,
dispatch to the longest-idle available operator, and the screen pop that follows the call
(docs/telephony.md "The queue", docs/adr/0023)."""
