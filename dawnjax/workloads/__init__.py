"""Tasks (data + model + target + evaluation) behind one API; see `base.Workload`."""
