collect_ignore_glob = ["data/*"]  # the fixture's generator runs against an older Driftline, not this one
