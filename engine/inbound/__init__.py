"""Carrier → engine traffic: status and MO webhooks, the module chain (opt-out, opt-in, help, welcome, routing)."""
