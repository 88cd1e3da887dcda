"""Kafka clients with the defaults we stand behind, and topic set-up."""
