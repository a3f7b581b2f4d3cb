"""Resumable streams: generation that outlives the client's connection, replayable by event id."""
