"""Tariffs as data: the tariff model, the shipped tariff files, OpenEI URDB import and the bill calculator."""
