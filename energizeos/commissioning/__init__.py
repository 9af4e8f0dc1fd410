"""Commissioning: FAT/SAT procedures as data (``procedures/*.yaml``), the automatic actions that carry
them out on a site, a runner node that drives them and records every step on the audit chain."""
