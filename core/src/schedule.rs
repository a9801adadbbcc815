//! Which probe runs when: per-target intervals spread with seeded jitter (issue 2/10).
