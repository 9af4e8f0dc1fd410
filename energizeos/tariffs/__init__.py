"""Tariffs as data: the tariff model, the shipped tariff files, OpenEI URDB import and the bill calculator."""

from energizeos.tariffs.bill import Bill, BillError, LineItem, MonthBill, compute_bill
from energizeos.tariffs.model import IntervalPrices, Tariff, TariffError, load_tariff, shipped_tariffs
from energizeos.tariffs.urdb import tariff_from_urdb

__all__ = [
    "Bill",
    "BillError",
    "IntervalPrices",
    "LineItem",
    "MonthBill",
    "Tariff",
    "TariffError",
    "compute_bill",
    "load_tariff",
    "shipped_tariffs",
    "tariff_from_urdb",
]
