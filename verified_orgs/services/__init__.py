"""Verified organizations' services, one job each: organizations (verification lifecycle, staff
edits), affiliations (seats), billing (prices, periods, prorated seats, invoices), dunning (the
organization follows its subscription's state), locks (one lock order for every path)."""
