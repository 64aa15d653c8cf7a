"""Bindings to the Linux kernel interfaces the appliance drives directly."""
