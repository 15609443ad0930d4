"""Verified organizations' services: organizations (lifecycle), affiliations (seats), billing."""
