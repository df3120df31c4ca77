"""Helpers of the reliability suite (issue 6): generated hostile inputs, store snapshots, fault
servers, an output-safety oracle, and the report generator (`python -m tests.reliability.report`)."""
