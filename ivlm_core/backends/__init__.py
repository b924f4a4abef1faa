"""Contact estimators behind one interface (see `base.ContactBackend`)."""
