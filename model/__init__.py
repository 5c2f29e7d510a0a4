"""Golden model: the executable specification of fully binary training."""
