"""Billing rules for the Northwind studio's client invoices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

LATE_FEE_RATE = 0.02  # per started month
GRACE_DAYS = 30


@dataclass
class Invoice:
    number: str
    amount_cents: int
    issued: date


def late_fee_cents(invoice: Invoice, paid: date) -> int:
    """Invoices paid more than thirty days after issue are charged two percent of
    the amount for every started month beyond the grace period."""
    overdue = (paid - invoice.issued).days - GRACE_DAYS
    if overdue <= 0:
        return 0
    months = -(-overdue // 30)
    return round(invoice.amount_cents * LATE_FEE_RATE * months)


def vat_rate(country: str) -> float:
    """Value added tax by client country; clients outside the EU pay none."""
    rates = {"NL": 0.21, "DE": 0.19, "FR": 0.20}
    return rates.get(country, 0.0)
