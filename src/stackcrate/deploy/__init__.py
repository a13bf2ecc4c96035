"""`stackcrate deploy`: a single-node control plane from the built artifacts (local processes by default)."""
