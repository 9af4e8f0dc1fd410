"""Day-ahead planning: the load forecast, the battery LP (HiGHS) and the safety gate with approvals."""
