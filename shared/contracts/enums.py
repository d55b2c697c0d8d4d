"""Vocabularies shared by several contracts."""

from enum import StrEnum


class Channel(StrEnum):
    hotline = "hotline"
    dealer = "dealer"
    web = "web"
    app = "app"


class ServiceMode(StrEnum):
    phone = "phone"
    onsite = "onsite"
    carry_in = "carry_in"
    mail_in = "mail_in"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class CustomerTier(StrEnum):
    standard = "standard"
    key_account = "key_account"
    farmer = "farmer"
