"""The blog both examples share: a WordPress-style single-table model."""
