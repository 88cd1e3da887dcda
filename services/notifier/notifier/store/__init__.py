"""The notifier's tables (all prefixed `notifier_`) and their migrations."""
