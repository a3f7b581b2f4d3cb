"""Background jobs: a request accepted now (202), executed by a worker, reported back later."""
