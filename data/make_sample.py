"""A small synthetic news corpus in CoNLL-2003 format, written by the project itself.

The bundled demo data in ``data/sample/`` comes from this module: a deterministic
generator of newswire-like English sentences built from templates and small gazetteers
(all invented here; no text is taken from any real corpus). Each token carries a Penn
Treebank POS tag, an IOB1 chunk tag and an IOB1 named-entity tag (PER, ORG, LOC, MISC),
exactly as in the four-column CoNLL-2003 files::

    -DOCSTART- -X- -X- O

    BRUSSELS NNP I-NP I-LOC
    1996-08-22 CD I-NP O

    Anna NNP I-NP I-PER
    Fischer NNP I-NP I-PER
    said VBD I-VP O
    ...

IOB1 means ``I-`` everywhere inside a chunk or entity; ``B-`` only marks the first token
of a chunk/entity that directly follows another one of the same type (for instance the
second pair in a doubles result ``Novak Jensen beat ...`` or ``the Greek Turkish border``).

The splits use different parts of the gazetteers, so some test entities never occur in
training, and a few words are ambiguous on purpose (``Jordan`` is a person and a country,
``Washington`` a surname and a city, ``Porto`` a city and a football club).

Regenerate the committed files with ``python data/make_sample.py`` (see :func:`write_sample`).
"""

from __future__ import annotations

import argparse
import random
import textwrap
import zlib
from pathlib import Path
from typing import Callable, Sequence

Token = tuple[str, str, str, str]
"""(word, POS, chunk, NER) -- one line of a CoNLL-2003 file."""
Sentence = list[Token]
Document = list[Sentence]

DOCSTART = ("-DOCSTART-", "-X-", "-X-", "O")
SPLITS = ("train", "dev", "test")
ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")

# Tokens with these POS tags are punctuation: chunk tag O.
PUNCT_POS = frozenset({".", ",", ":", "(", ")", '"'})

# --------------------------------------------------------------------------- gazetteers
#
# Entries are space-separated words; a leading "the " is an article that stays outside the
# entity; "word/TAG" overrides the POS tag (default NNP, "of" -> IN, which also becomes a
# PP chunk inside the name, as in CoNLL-2003).

FIRST_NAMES = """
Peter Anna Michael Maria John Elena Thomas Sarah David Laura Hans Ingrid Pierre Claire
Marco Giulia Carlos Lucia Kenji Yuki Ahmed Leila Ivan Olga Jan Katrin Robert Helen Paul
Sofia Daniel Nadia Stefan Emma Luis Ana Viktor Irene Samuel Mariam George Tomas Rosa
Frank Alice Henrik Marta Omar Jordan Chelsea Paris Victoria Georgia Florence
""".split()

LAST_NAMES = """
Blackwood Fischer Moreau Rossi Garcia Tanaka Haddad Petrov Novak Jensen Okafor Lindqvist
Bauer Dubois Santos Kowalski Nakamura Mendes Hartley Keller Brennan Costa Varga Ivanov
Schmidt Larsen Duarte Marsh Whitfield Okonkwo Sorensen Albrecht Ferreira Holm Reyes
Stroud Vance Weller Kaplan Morozov Oyelaran Castellano Lindgren Hollis Pereira Adler
Washington Lincoln Ford Jordan
""".split()

COUNTRIES = [
    "Germany", "France", "Italy", "Spain", "Japan", "China", "Russia", "Brazil",
    "Argentina", "Egypt", "Kenya", "Nigeria", "Poland", "Sweden", "Norway", "Canada",
    "Mexico", "Turkey", "Greece", "Portugal", "the Netherlands/NNP", "Belgium", "Austria",
    "Hungary", "Chile", "India", "Pakistan", "Australia", "Jordan", "Georgia", "Israel",
    "Denmark", "Finland", "Ireland", "Romania", "Morocco", "Peru", "Vietnam",
    "the United States/NNPS", "South Africa", "New Zealand", "the Czech Republic",
    "Sri Lanka", "Saudi Arabia", "the United Arab Emirates/NNPS", "South Korea",
    "Costa Rica", "the Ivory Coast",
]

CITIES = [
    "Berlin", "Bonn", "Paris", "London", "Rome", "Madrid", "Tokyo", "Moscow", "Cairo",
    "Nairobi", "Lagos", "Warsaw", "Stockholm", "Oslo", "Toronto", "Lisbon", "Athens",
    "Vienna", "Budapest", "Brussels", "Geneva", "Frankfurt", "Milan", "Porto", "Lyon",
    "Washington", "Lincoln", "Florence", "Victoria", "Amman", "Istanbul", "Dublin",
    "Prague", "Helsinki", "Seoul", "Lima", "Hamburg", "Munich", "Marseille", "Osaka",
    "New York", "Los Angeles", "Hong Kong", "Buenos Aires", "Rio de/NNP Janeiro",
    "Sao Paulo", "Tel Aviv", "Cape Town", "San Francisco", "Kuala Lumpur", "New Delhi",
    "Abu Dhabi", "Mexico City",
]

NATIONALITIES = """
German French Italian Spanish Japanese Chinese Russian Brazilian Argentine Egyptian
Kenyan Nigerian Polish Swedish Norwegian Canadian Mexican Turkish Greek Portuguese Dutch
Belgian Austrian Hungarian Chilean Indian Pakistani Australian Israeli Jordanian
European Asian African American British Irish Danish Finnish Swiss Czech Romanian
Moroccan Peruvian Korean Vietnamese
""".split()

# Events by the kind of sport document that may mention them (news mentions any).
EVENTS = {
    "SOCCER": ["the World Cup", "the Asian Cup", "the European Championship",
               "the Champions League", "the Africa Cup", "the Gold Cup", "the UEFA Cup",
               "the Copa America"],
    "TENNIS": ["the Davis Cup", "the U.S. Open", "the Australian Open", "the Fed Cup",
               "the French Open", "the Hopman Cup"],
    "INDIVIDUAL": ["the Olympic/NNP Games/NNPS", "the Tour de/NNP France", "the Grand Prix",
                   "the London Marathon", "the Ryder Cup", "the Golden League",
                   "the Giro d'Italia", "the Commonwealth Games/NNPS",
                   "the World Championships/NNPS", "the Winter Olympics/NNPS",
                   "the Masters/NNPS"],
}

# Bodies and agencies ("the European Commission", "NATO").
ORGANISATIONS = [
    "the European Commission", "the European Union", "the United Nations/NNPS",
    "the World Bank", "the International Monetary Fund", "the Red Cross",
    "the Security Council", "the Supreme Court", "the Labour Party",
    "the World Health Organisation", "the Arab League", "the Council of Europe",
    "the Social Democrats/NNPS", "the Green Party", "the Democratic Alliance",
    "the Court of Justice", "the Olympic Committee", "NATO", "OPEC", "UEFA", "FIFA",
    "Interpol", "Greenpeace", "Amnesty International", "Human Rights Watch",
]

# Companies (no article).
COMPANIES = [
    "Northwind Holdings", "Grafton Mining", "Meridian Airlines", "Halvorsen Shipping",
    "Sonex Electronics", "Baltic Steel", "Atlas Insurance", "Pioneer Foods",
    "Helios Energy", "Orion Telecom", "Kestrel Motors", "Silverline Bank",
    "Bank of Tokyo", "Ford", "Tamsin Chemicals", "Vantage Media", "Corvel Pharma",
    "Blue Ridge Capital", "Nordic Paper", "Delta Cement", "Sunrise Textiles",
    "Bank of Lisbon", "Harbor Logistics", "Aurora Software", "Granite Rail",
]

CENTRAL_BANKS = [
    "the Bundesbank", "the Bank of England", "the Bank of Japan", "the Bank of Canada",
    "the Reserve Bank", "the National Bank", "the Federal Reserve",
]

MINISTRIES = [
    "the Finance Ministry", "the Foreign Ministry", "the Trade Ministry",
    "the Economics Ministry", "the Statistics Office", "the Interior Ministry",
    "the Defence Ministry",
]

CLUBS = [
    "Ajax", "Celtic", "Porto", "Lyon", "Chelsea", "Benfica", "Juventus", "Real Madrid",
    "Bayern Munich", "Red Star", "Dynamo Kiev", "Sporting", "Galatasaray", "Feyenoord",
    "Rangers", "Inter Milan", "Werder Bremen", "Hertha Berlin", "Olympique Marseille",
    "Anderlecht", "Rapid Vienna", "Sparta Prague", "Fenerbahce", "Valencia", "Lazio",
    "Hamburg SV", "Dinamo Bucharest", "Ferencvaros",
]

# (full name, acronym) pairs: "the International Monetary Fund ( IMF )".
ACRONYMS = [
    ("the International Monetary Fund", "IMF"), ("the World Trade Organisation", "WTO"),
    ("the European Central Bank", "ECB"), ("the International Atomic Energy Agency", "IAEA"),
    ("the Organisation for Economic Cooperation", "OEC"),
    ("the African Development Bank", "AfDB"), ("the World Food Programme", "WFP"),
    ("the Baltic Shipping Council", "BSC"), ("the National Olympic Committee", "NOC"),
]

# Words deliberately listed under two types; kept in every split's gazetteer.
AMBIGUOUS = frozenset({
    "Jordan", "Washington", "Lincoln", "Ford", "Chelsea", "Paris", "Victoria",
    "Georgia", "Florence", "Porto", "Lyon",
})

# ------------------------------------------------------------------- other word classes

DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = ("January February March April May June July August September October "
          "November December").split()
CURRENCIES = [("marks", "NNS"), ("francs", "NNS"), ("dollars", "NNS"), ("yen", "NN"),
              ("pounds", "NNS"), ("guilders", "NNS"), ("crowns", "NNS")]
TITLES = [("foreign/JJ minister/NN"), ("prime/JJ minister/NN"), ("spokesman/NN"),
          ("ambassador/NN"), ("envoy/NN"), ("trade/NN minister/NN"), ("president/NN"),
          ("defence/NN minister/NN"), ("opposition/NN leader/NN")]
SAY_VERBS = ["said", "said", "said", "said", "added", "stressed", "insisted", "argued"]
DURATIONS = ["two-day", "three-day", "four-day", "week-long"]
ORDINALS = ["second", "third", "fourth", "fifth", "final"]
SETS = ["6-3", "6-4", "7-5", "6-2", "7-6", "6-1", "4-6", "3-6", "6-0"]
SCORES = ["2-1", "1-0", "3-1", "2-0", "3-2", "4-1", "3-0"]
DRAWS = ["0-0", "1-1", "2-2"]

# ------------------------------------------------------------------------- templates
#
# A template is a sequence of chunks separated by " | ". Each chunk starts with its type
# (NP, VP, PP, ADVP, ADJP, SBAR, PRT, or O for tokens outside any chunk) followed by
# tokens "word/POS" or slots "{NAME}" (see _Builder.slot). Punctuation is always chunk O.

HEADLINES_NEWS = [
    "NP {ORG} | VP rejects/VBZ | NP {NAT} call/NN | VP to/TO boycott/VB | NP {NAT} goods/NNS | O ./.",
    "NP {COUNTRY} | VP says/VBZ | NP talks/NNS | PP with/IN | NP {COUNTRY} | VP stalled/VBD",
    "NP {COMPANY} shares/NNS | VP fall/VBP | PP after/IN | NP profit/NN warning/NN",
    "NP {NAT} minister/NN | VP to/TO visit/VB | NP {COUNTRY}",
    "NP {CITY} | NP police/NNS | VP arrest/VBP | NP {NUM} | PP after/IN | NP protest/NN",
    "NP {BANK} | VP holds/VBZ | NP rates/NNS | ADJP steady/JJ",
    "NP {ORG} | VP warns/VBZ | PP of/IN | NP food/NN shortages/NNS | PP in/IN | NP {COUNTRY}",
    "NP {NAT} inflation/NN | VP slows/VBZ | PP to/TO | NP {DEC} pct/NN",
]

DATELINE = "NP {DATELINE_CITY} {DATE}"
BYLINE = "NP {PER}"

GENERAL = [
    "NP {ORG} | VP said/VBD | PP on/IN | NP {DAY} | NP it/PRP | VP would/MD review/VB | NP the/DT {NAT} proposal/NN | PP before/IN | NP the/DT end/NN | PP of/IN | NP {MONTH} | O ./.",
    "NP {NAT} {TITLE} {PER} | VP {SAY} | NP the/DT talks/NNS | PP in/IN | NP {CITY} | VP had/VBD been/VBN | ADJP constructive/JJ | O ./.",
    'O "/" | NP We/PRP | VP are/VBP | ADJP ready/JJ | VP to/TO work/VB | PP with/IN | NP {COUNTRY} | O ,/, | O "/" | NP {PER} | VP told/VBD | NP reporters/NNS | O ./.',
    "NP {PER} | O ,/, | NP the/DT {TITLE} | PP of/IN | NP {COUNTRY} | O ,/, | VP {SAY} | NP the/DT economy/NN | VP grew/VBD | NP {DEC} percent/NN | PP in/IN | NP {YEAR} | O ./.",
    "NP Police/NNS | PP in/IN | NP {CITY} | VP arrested/VBD | NP {NUM} people/NNS | PP after/IN | NP clashes/NNS | PP near/IN | NP the/DT {NAT} embassy/NN | PP on/IN | NP {DAY} | O ./.",
    "NP {COUNTRY} | VP has/VBZ asked/VBN | NP {ORG} | VP to/TO send/VB | NP observers/NNS | PP to/TO | NP the/DT border/NN | PP with/IN | NP {COUNTRY} | O ,/, | NP officials/NNS | VP said/VBD | O ./.",
    "NP {PER} | VP arrived/VBD | PP in/IN | NP {CITY} | PP on/IN | NP {DAY} | PP for/IN | NP a/DT {DURATION} visit/NN | O ./.",
    "NP The/DT visit/NN | VP is/VBZ expected/VBN to/TO focus/VB | PP on/IN | NP trade/NN | O and/CC | NP the/DT {NAT} {NAT} border/NN | O ./.",
    "NP {ORG} | VP will/MD hold/VB | NP talks/NNS | PP with/IN | NP {NAT} officials/NNS | PP in/IN | NP {CITY} | NP next/JJ week/NN | O ./.",
    "NP The/DT {NAT} government/NN | VP denied/VBD | NP reports/NNS | SBAR that/IN | NP it/PRP | VP had/VBD agreed/VBN to/TO sell/VB | NP weapons/NNS | PP to/TO | NP {COUNTRY} | O ./.",
    "PP According/VBG to/TO | NP {ORG} | O ,/, | NP {BIGNUM} refugees/NNS | VP have/VBP crossed/VBN | PP into/IN | NP {COUNTRY} | PP since/IN | NP {MONTH} | O ./.",
    "NP {PER} | VP {SAY} | NP the/DT delegation/NN | VP would/MD meet/VB | NP {PER} | PP in/IN | NP {CITY} | PP on/IN | NP {DAY} | O ./.",
    "NP {PER} | O ,/, | NP who/WP | VP leads/VBZ | NP the/DT {NAT} delegation/NN | O ,/, | VP {SAY} | NP the/DT agreement/NN | VP was/VBD | ADJP fair/JJ | O ./.",
    "NP The/DT meeting/NN | PP in/IN | NP {CITY} | VP was/VBD attended/VBN | PP by/IN | NP ministers/NNS | PP from/IN | NP {COUNTRY} | O ,/, | NP {COUNTRY} | O and/CC | NP {COUNTRY} | O ./.",
    "NP {ORG} | VP has/VBZ criticised/VBN | NP {COUNTRY} | PP for/IN | VP failing/VBG to/TO protect/VB | NP {NAT} journalists/NNS | O ./.",
    "NP {PER} | VP was/VBD elected/VBN | NP president/NN | PP of/IN | NP {ORG} | PP in/IN | NP {YEAR} | O ./.",
    'O "/" | NP This/DT | VP is/VBZ | NP a/DT victory/NN | PP for/IN | NP the/DT {NAT} people/NNS | O ,/, | O "/" | VP {SAY} | NP {PER} | O ./.',
    "NP {EVENT} | VP will/MD be/VB held/VBN | PP in/IN | NP {CITY} | PP in/IN | NP {MONTH} {NEXTYEAR} | O ,/, | NP organisers/NNS | VP announced/VBD | O ./.",
    "NP {NAT} troops/NNS | VP entered/VBD | NP the/DT town/NN | PP of/IN | NP {CITY} | PP on/IN | NP {DAY} | O ,/, | NP witnesses/NNS | VP said/VBD | O ./.",
    "NP {PER} | VP will/MD travel/VB | PP to/TO | NP {CITY} | ADVP later/RB | NP this/DT month/NN | VP to/TO attend/VB | NP {EVENT} | O ,/, | NP {REF} 's/POS | NP office/NN | VP said/VBD | O ./.",
    "NP {COUNTRY} | VP recalled/VBD | NP its/PRP$ ambassador/NN | PP to/TO | NP {COUNTRY} | PP after/IN | NP a/DT dispute/NN | PP over/IN | NP fishing/NN rights/NNS | O ./.",
    "NP {ACRONYM} | VP approved/VBD | NP a/DT {BIGNUM} million/CD dollar/NN loan/NN | PP for/IN | NP {COUNTRY} | PP on/IN | NP {DAY} | O ./.",
    "NP Talks/NNS | PP between/IN | NP {COMPANY} | O and/CC | NP {NAT} unions/NNS | VP broke/VBD | PRT down/RP | PP on/IN | NP {DAY} | O ./.",
    "NP {ORG} | VP called/VBD | PP on/IN | NP {COUNTRY} | VP to/TO release/VB | NP {NUM} {NAT} prisoners/NNS | O ./.",
    "NP {PER} | VP met/VBD | NP {NAT} leaders/NNS | PP in/IN | NP {CITY} | PP on/IN | NP {DAY} | PP before/IN | VP flying/VBG | PP to/TO | NP {COUNTRY} | O ./.",
    "NP Officials/NNS | PP in/IN | NP {CITY} | VP {SAY} | NP {ORG} | VP had/VBD not/RB been/VBN informed/VBN | PP of/IN | NP the/DT decision/NN | O ./.",
    "NP {PER} | VP resigned/VBD | PP as/IN | NP {TITLE} | PP on/IN | NP {DAY} | O ,/, | NP {NUM} days/NNS | PP after/IN | NP the/DT vote/NN | O ./.",
]

ECONOMY = [
    "NP {COMPANY} | VP {SAY} | NP its/PRP$ net/JJ profit/NN | VP rose/VBD | NP {DEC} percent/NN | PP to/TO | NP {BIGNUM} million/CD {CURRENCY} | PP in/IN | NP the/DT first/JJ half/NN | O ./.",
    "NP Shares/NNS | PP in/IN | NP {COMPANY} | VP fell/VBD | NP {DEC} percent/NN | PP after/IN | NP the/DT company/NN | VP warned/VBD | PP of/IN | NP lower/JJR sales/NNS | PP in/IN | NP {COUNTRY} | O ./.",
    "NP {COMPANY} | VP agreed/VBD to/TO buy/VB | NP {NAT} rival/NN {COMPANY} | PP for/IN | NP $/$ {BIGNUM} million/CD | O ./.",
    "NP {BANK} | VP left/VBD | NP interest/NN rates/NNS | ADJP unchanged/JJ | PP on/IN | NP {DAY} | O ,/, | VP surprising/VBG | NP some/DT analysts/NNS | O ./.",
    "NP {COUNTRY} 's/POS | NP trade/NN surplus/NN | VP widened/VBD | PP to/TO | NP {DEC} billion/CD {CURRENCY} | PP in/IN | NP {MONTH} | O ,/, | NP {MINISTRY} | VP said/VBD | O ./.",
    "NP {COMPANY} | VP will/MD cut/VB | NP {BIGNUM} jobs/NNS | PP at/IN | NP its/PRP$ plants/NNS | PP in/IN | NP {CITY} | O and/CC | NP {CITY} | PP by/IN | NP the/DT end/NN | PP of/IN | NP the/DT year/NN | O ,/, | NP a/DT spokesman/NN | VP said/VBD | O ./.",
    "NP {NAT} inflation/NN | VP slowed/VBD | PP to/TO | NP {DEC} percent/NN | PP in/IN | NP {MONTH} | PP from/IN | NP {DEC} percent/NN | PP in/IN | NP {MONTH} | O ./.",
    "NP {PER} | O ,/, | NP chief/JJ economist/NN | PP at/IN | NP {COMPANY} | PP in/IN | NP {CITY} | O ,/, | VP {SAY} | NP the/DT figures/NNS | VP were/VBD | ADJP weaker/JJR | SBAR than/IN | VP expected/VBN | O ./.",
    "NP The/DT dollar/NN | VP closed/VBD | PP at/IN | NP {DEC} {FX} | PP in/IN | NP {CITY} | PP on/IN | NP {DAY} | O ./.",
    "NP {MINISTRY} | VP {SAY} | NP {COUNTRY} | VP would/MD borrow/VB | NP {BIGNUM} million/CD {CURRENCY} | PP from/IN | NP {ACRONYM} | O ./.",
]

# Sport documents: one sport per document, with its own headlines, body and result lines.
# {SPORT} is the document's sport name in capitals.
SOCCER = {
    "headline": [
        "NP {SPORT} | O -/: | NP {CLUB} | VP beat/VBD | NP {CLUB}",
        "NP {SPORT} | O -/: | NP {COUNTRY} | VP hold/VBP | NP {COUNTRY} | PP to/TO | NP {DRAW} draw/NN | O ./.",
        "NP {SPORT} | O -/: | NP {COUNTRY} | VP reach/VBP | NP {EVENT} final/NN",
        "NP {SPORT} | O -/: | NP {NAT} league/NN results/NNS",
        "NP {SPORT} | O -/: | NP {CLUB} | VP sign/VBP | NP {NAT} defender/NN",
    ],
    "body": [
        "NP {CLUB} | VP beat/VBD | NP {CLUB} | NP {SCORE} | PP on/IN | NP {DAY} | VP to/TO go/VB | ADVP top/RB | PP of/IN | NP the/DT {NAT} league/NN | O ./.",
        "NP {PER} | VP scored/VBD | NP two/CD goals/NNS | SBAR as/IN | NP {CLUB} | VP drew/VBD | NP {DRAW} | PP with/IN | NP {CLUB} | O ./.",
        "NP {NAT} striker/NN {PER} | VP was/VBD sent/VBN | PRT off/RP | PP after/IN | NP {NUM} minutes/NNS | O ./.",
        "NP {COUNTRY} | VP will/MD meet/VB | NP {COUNTRY} | PP in/IN | NP the/DT final/NN | PP of/IN | NP {EVENT} | PP on/IN | NP {DAY} | O ./.",
        "NP {CLUB} coach/NN {PER} | VP {SAY} | NP the/DT team/NN | VP had/VBD played/VBN | ADVP well/RB | O ./.",
        'O "/" | NP It/PRP | VP was/VBD | NP a/DT difficult/JJ match/NN | O ,/, | O "/" | VP said/VBD | NP {PER} | O ,/, | NP who/WP | VP joins/VBZ | NP {CLUB} | PP from/IN | NP {CLUB} | O ./.',
        "NP {CLUB} | VP signed/VBD | NP {NAT} defender/NN {PER} | PP from/IN | NP {CLUB} | PP for/IN | NP {DEC} million/CD {CURRENCY} | O ./.",
        "NP {NAT} league/NN results/NNS | PP on/IN | NP {DAY} | O :/:",
    ],
    "results": [
        "NP {CLUB} {GOALS} {CLUB} {GOALS}",
        "NP {COUNTRY} {GOALS} {COUNTRY} {GOALS}",
        "NP {CLUB} {STANDING}",
        "NP {NEWPER} | O (/( | NP {CLUB} | O )/) | NP {TALLY} goals/NNS",
    ],
}

TENNIS = {
    "headline": [
        "NP {SPORT} | O -/: | NP {PER} | VP wins/VBZ | NP {EVENT} title/NN",
        "NP {SPORT} | O -/: | NP {SURNAME} | VP beats/VBZ | NP {SURNAME} | PP in/IN | NP {CITY}",
        "NP {SPORT} | O -/: | NP {COUNTRY} | VP lead/VBP | NP {COUNTRY} | PP in/IN | NP {EVENT}",
    ],
    "body": [
        "NP Top/JJ seed/NN {PER} | VP beat/VBD | NP {PER} | PP of/IN | NP {COUNTRY} | NP {SET} {SET} | PP in/IN | NP the/DT first/JJ round/NN | O ./.",
        "NP {PER} | VP needed/VBD | NP {NUM} minutes/NNS | VP to/TO beat/VB | NP {NAT} qualifier/NN {PER} | NP {SET} {SET} | O ./.",
        "NP {PER} | VP will/MD play/VB | NP {PER} | PP in/IN | NP the/DT semi-finals/NNS | PP of/IN | NP {EVENT} | PP on/IN | NP {DAY} | O ./.",
        'O "/" | NP I/PRP | VP played/VBD | ADVP well/RB | NP today/NN | O ,/, | O "/" | VP said/VBD | NP {PER} | O ./.',
        "NP Results/NNS | PP from/IN | NP {EVENT} | PP on/IN | NP {DAY} | O :/:",
    ],
    "results": [
        "NP {NEWPER} | O (/( | NP {COUNTRY} | O )/) | VP beat/VBD | NP {NEWPER} | O (/( | NP {COUNTRY} | O )/) | NP {SET} {SET}",
        "NP {SURNAME} {SURNAME} | VP beat/VBD | NP {SURNAME} {SURNAME} {SET} {SET}",
    ],
}

# Athletics, cycling and golf: individual results.
INDIVIDUAL = {
    "headline": [
        "NP {SPORT} | O -/: | NP {SURNAME} | VP leads/VBZ | PP in/IN | NP {CITY}",
        "NP {SPORT} | O -/: | NP {PER} | VP wins/VBZ | NP {EVENT} title/NN",
        "NP {SPORT} | O -/: | NP {NAT} {SURNAME} | VP sets/VBZ | NP record/NN",
    ],
    "body": [
        "NP {PER} | O (/( | NP {COUNTRY} | O )/) | VP won/VBD | NP the/DT {ORDINAL} stage/NN | PP of/IN | NP {EVENT} | PP in/IN | NP {CITY} | O ./.",
        "NP {PER} | VP finished/VBD | NP {DEC} seconds/NNS | PP behind/IN | NP {NAT} {PER} | PP in/IN | NP {CITY} | O ./.",
        "NP {PER} | VP set/VBD | NP a/DT course/NN record/NN | PP of/IN | NP {TIME} | PP at/IN | NP {EVENT} | O ./.",
        'O "/" | NP I/PRP | VP felt/VBD | ADJP strong/JJ | PP from/IN | NP the/DT start/NN | O ,/, | O "/" | VP said/VBD | NP {PER} | O ./.',
        "NP {DATELINE_CITY} {DATE} | O -/: | NP Results/NNS | PP of/IN | NP {EVENT} | O :/:",
        "NP Leading/VBG positions/NNS | PP after/IN | NP the/DT {ORDINAL} round/NN | O :/:",
    ],
    "results": [
        "NP {RANK} {NEWPER} | O (/( | NP {COUNTRY} | O )/) | NP {TIME}",
    ],
}

SPORT_TEMPLATES = {"SOCCER": SOCCER, "TENNIS": TENNIS, "ATHLETICS": INDIVIDUAL,
                   "CYCLING": INDIVIDUAL, "GOLF": INDIVIDUAL}


def _parse(template: str) -> list[tuple[str, list[str]]]:
    chunks = []
    for part in template.split(" | "):
        ctype, *items = part.split()
        if ctype not in {"NP", "VP", "PP", "ADVP", "ADJP", "SBAR", "PRT", "O"}:
            raise ValueError(f"bad chunk type {ctype!r} in template {template!r}")
        for item in items:
            if not (item.startswith("{") and item.endswith("}")) and "/" not in item:
                raise ValueError(f"token {item!r} without a POS tag in {template!r}")
        chunks.append((ctype, items))
    return chunks


_TEMPLATE_GROUPS = {
    "headline_news": HEADLINES_NEWS, "general": GENERAL, "economy": ECONOMY,
    "dateline": [DATELINE], "byline": [BYLINE],
    **{f"{sport}_{part}": group for sport, parts in SPORT_TEMPLATES.items()
       for part, group in parts.items()},
}
_PARSED = {name: [_parse(t) for t in group] for name, group in _TEMPLATE_GROUPS.items()}


# ------------------------------------------------------------------- gazetteer splits


def _entry_tokens(entry: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split a gazetteer entry into (article tokens, entity tokens) with POS tags."""
    article: list[tuple[str, str]] = []
    words = entry.split()
    if words[0] == "the":
        article = [("the", "DT")]
        words = words[1:]
    tokens = []
    for w in words:
        if "/" in w:
            word, pos = w.rsplit("/", 1)
        else:
            word, pos = w, ("IN" if w in {"of", "for"} else "NNP")
        tokens.append((word, pos))
    return article, tokens


def _surface(entry) -> str:
    if isinstance(entry, tuple):
        return " ".join(_surface(e) for e in entry)
    return " ".join(w.rsplit("/", 1)[0] for w in entry.split() if w != "the")


_OWNERS = ("shared",) * 11 + ("train",) * 5 + ("dev", "dev", "test", "test")


def _partition(name: str, items: Sequence, split: str | None) -> list:
    """The part of a gazetteer a split may use.

    Items are dealt (deterministically, per gazetteer) into shared (~55%), train-only
    (~25%), dev-only (~10%) and test-only (~10%) groups; each split sees the shared group
    plus its own. Ambiguous words are always shared so that every split sees both uses.
    """
    if split is None:
        return list(items)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS} or None")
    order = sorted(items, key=_surface)
    random.Random(zlib.crc32(name.encode())).shuffle(order)
    keep = []
    for i, item in enumerate(order):
        owner = _OWNERS[i % len(_OWNERS)]
        if any(w in AMBIGUOUS for w in _surface(item).split()):
            owner = "shared"
        if owner in ("shared", split):
            keep.append(item)
    return keep


class _Gazetteers:
    def __init__(self, split: str | None):
        self.first = _partition("first", FIRST_NAMES, split)
        self.last = _partition("last", LAST_NAMES, split)
        self.countries = _partition("countries", COUNTRIES, split)
        self.cities = _partition("cities", CITIES, split)
        self.nationalities = _partition("nationalities", NATIONALITIES, split)
        self.events = {kind: _partition(f"events-{kind}", items, split)
                       for kind, items in EVENTS.items()}
        self.orgs = _partition("orgs", ORGANISATIONS, split)
        self.companies = _partition("companies", COMPANIES, split)
        self.banks = _partition("banks", CENTRAL_BANKS, split)
        self.ministries = _partition("ministries", MINISTRIES, split)
        self.clubs = _partition("clubs", CLUBS, split)
        self.acronyms = _partition("acronyms", ACRONYMS, split)


# ----------------------------------------------------------------------- generation

# A piece of a slot expansion: (word, POS, entity key or None, chunk override or None).
_Piece = tuple[str, str, "tuple[str, int] | None", "str | None"]


class _Builder:
    """Expands templates into tagged sentences; holds per-document state."""

    def __init__(self, rng: random.Random, gaz: _Gazetteers):
        self.rng = rng
        self.gaz = gaz
        self.new_document()

    def new_document(self) -> None:
        self.people: list[tuple[str, str]] = []  # (first, last) mentioned so far
        self.used_templates: set[int] = set()
        self.sport = ""
        self.rank = 0
        self.year = self.rng.choice((1996, 1996, 1997))
        self.date = f"{self.year}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"

    # -- slots ------------------------------------------------------------------------

    def _entity(self, entry: str, etype: str) -> list[_Piece]:
        article, tokens = _entry_tokens(entry)
        pieces: list[_Piece] = [(w, p, None, None) for w, p in article]
        for w, p in tokens:
            pieces.append((w, p, (etype, 0), "PP" if p == "IN" else None))
        return pieces

    def _person(self, surname_only: bool = False, new: bool = False) -> list[_Piece]:
        """A person: new (full name or surname) or, sometimes, one mentioned before by
        surname; never one already named in the current sentence."""
        rng = self.rng
        earlier = [p for p in self.people if p[1] not in self.in_sentence]
        if earlier and not new and rng.random() < 0.3:
            first, last = rng.choice(earlier)
            self.in_sentence.add(last)
            return [(last, "NNP", ("PER", 0), None)]
        while True:
            first, last = rng.choice(self.gaz.first), rng.choice(self.gaz.last)
            if last not in self.in_sentence and first not in self.in_sentence:
                break
        self.in_sentence.update((first, last))
        self.people.append((first, last))
        if surname_only:
            return [(last, "NNP", ("PER", 0), None)]
        return [(first, "NNP", ("PER", 0), None), (last, "NNP", ("PER", 0), None)]

    def slot(self, name: str) -> list[_Piece]:
        rng, g = self.rng, self.gaz
        words: Callable[[str], list[_Piece]] = lambda s: [
            (w.rsplit("/", 1)[0], w.rsplit("/", 1)[1], None, None) for w in s.split()]
        if name == "PER":
            return self._person()
        if name == "NEWPER":  # a person not mentioned before in the document
            return self._person(new=True)
        if name == "SURNAME":
            return self._person(surname_only=True)
        if name == "REF":  # the last person mentioned, by surname
            return [(self.people[-1][1], "NNP", ("PER", 0), None)]
        if name == "ORG":
            return self._entity(rng.choice(g.orgs), "ORG")
        if name == "COMPANY":
            return self._entity(rng.choice(g.companies), "ORG")
        if name == "BANK":
            return self._entity(rng.choice(g.banks), "ORG")
        if name == "MINISTRY":
            return self._entity(rng.choice(g.ministries), "ORG")
        if name == "CLUB":
            return self._entity(rng.choice(g.clubs), "ORG")
        if name == "ACRONYM":
            full, short = rng.choice(g.acronyms)
            pieces = self._entity(full, "ORG")
            return pieces + [("(", "(", None, None), (short, "NNP", ("ORG", 1), None),
                             (")", ")", None, None)]
        if name == "COUNTRY":
            return self._entity(rng.choice(g.countries), "LOC")
        if name == "CITY":
            return self._entity(rng.choice(g.cities), "LOC")
        if name == "DATELINE_CITY":
            return [(w.upper(), p, e, c) for w, p, e, c in self.slot("CITY")]
        if name == "NAT":
            return [(rng.choice(g.nationalities), "JJ", ("MISC", 0), None)]
        if name == "EVENT":
            kind = self.sport if self.sport in g.events else "INDIVIDUAL"
            pool = g.events[kind] if self.sport else sorted(sum(g.events.values(), []))
            return self._entity(rng.choice(pool), "MISC")
        if name == "DAY":
            return words(rng.choice(DAYS) + "/NNP")
        if name == "MONTH":
            return words(rng.choice(MONTHS) + "/NNP")
        if name == "YEAR":
            return words(f"{rng.randint(1990, self.year)}/CD")
        if name == "NEXTYEAR":
            return words(f"{self.year + 1}/CD")
        if name == "DATE":
            return words(self.date + "/CD")
        if name == "NUM":
            return words(f"{rng.randint(2, 60)}/CD")
        if name == "GOALS":
            return words(f"{rng.randint(0, 5)}/CD")
        if name == "STANDING":  # played won drawn lost for against points
            played = rng.randint(3, 12)
            won = rng.randint(0, played)
            drawn = rng.randint(0, played - won)
            goals_for, against = rng.randint(won, 3 * played), rng.randint(0, 3 * played)
            row = [played, won, drawn, played - won - drawn, goals_for, against, 3 * won + drawn]
            return words(" ".join(f"{n}/CD" for n in row))
        if name == "RANK":  # 1., 2., ... through the document
            self.rank = self.rank % 10 + 1
            return words(f"{self.rank}./CD")
        if name == "TALLY":
            return words(f"{rng.randint(2, 19)}/CD")
        if name == "BIGNUM":
            n = rng.choice((rng.randint(12, 990), rng.randint(1000, 9900)))
            return words(f"{n:,}/CD")
        if name == "DEC":
            return words(f"{rng.randint(0, 9)}.{rng.randint(1, 9)}/CD")
        if name == "TIME":
            return words(f"{rng.randint(10, 59)}.{rng.randint(0, 99):02d}/CD")
        if name == "SCORE":
            return words(rng.choice(SCORES) + "/CD")
        if name == "DRAW":
            return words(rng.choice(DRAWS) + "/CD")
        if name == "SET":
            return words(rng.choice(SETS) + "/CD")
        if name == "SAY":
            return words(rng.choice(SAY_VERBS) + "/VBD")
        if name == "TITLE":
            return words(rng.choice(TITLES))
        if name in ("CURRENCY", "FX"):  # FX: not dollars ("the dollar closed at ...")
            w, p = rng.choice([c for c in CURRENCIES if name == "CURRENCY" or c[0] != "dollars"])
            return words(f"{w}/{p}")
        if name == "DURATION":
            return words(rng.choice(DURATIONS) + "/JJ")
        if name == "ORDINAL":
            return words(rng.choice(ORDINALS) + "/JJ")
        if name == "SPORT":
            return words(f"{self.sport}/NN")
        raise KeyError(f"unknown template slot {{{name}}}")

    # -- sentences --------------------------------------------------------------------

    def sentence(self, template: list[tuple[str, list[str]]], caps: bool = False) -> Sentence:
        # Flatten into (word, pos, ctype, chunk id, entity type, entity id).
        flat = []
        used: dict[str, set[str]] = {}
        self.in_sentence: set[str] = set()
        slot_no = 0
        for seg_no, (ctype, items) in enumerate(template):
            pieces: list[_Piece] = []
            for item in items:
                if item.startswith("{"):
                    name = item[1:-1]
                    for _ in range(20):  # the same slot twice in a sentence: distinct fillers
                        got = self.slot(name)
                        surface = " ".join(w for w, *_ in got)
                        if surface not in used.setdefault(name, set()):
                            break
                    used[name].add(surface)
                    slot_no += 1
                    pieces.extend((w, p, e and (e[0], (slot_no, e[1])), c) for w, p, e, c in got)
                else:
                    word, pos = item.rsplit("/", 1)
                    pieces.append((word, pos, None, None))
            sub, prev = 0, None
            for word, pos, ent, override in pieces:
                ct = "O" if pos in PUNCT_POS else (override or ctype)
                if prev is not None and ct != prev:
                    sub += 1
                prev = ct
                etype, eid = ent if ent else ("O", None)
                flat.append((word, pos, ct, (seg_no, sub), etype, eid))

        out: Sentence = []
        for i, (word, pos, ct, cid, etype, eid) in enumerate(flat):
            before = flat[i - 1] if i else None
            if ct == "O":
                chunk = "O"
            else:
                b = before is not None and before[2] == ct and before[3] != cid
                chunk = ("B-" if b else "I-") + ct
            if etype == "O":
                ner = "O"
            else:
                b = before is not None and before[4] == etype and before[5] != eid
                ner = ("B-" if b else "I-") + etype
            if caps:
                word = word.upper()
            elif i == 0 or (i == 1 and flat[0][0] == '"'):
                word = word[:1].upper() + word[1:]
            out.append((word, pos, chunk, ner))
        return out

    def pick(self, group: str) -> list[tuple[str, list[str]]]:
        """A template of ``group``; running-text templates are not repeated in a document."""
        choices = _PARSED[group]
        if not group.endswith(("_results", "dateline", "byline")):
            fresh = [t for t in choices if id(t) not in self.used_templates]
            choices = fresh or choices
        template = self.rng.choice(choices)
        self.used_templates.add(id(template))
        return template

    def document(self, n: int) -> Document:
        """One document of ``n`` sentences: news or sport, with headline and dateline."""
        rng = self.rng
        self.new_document()
        if rng.random() < 0.4:
            self.sport = rng.choice(sorted(SPORT_TEMPLATES))
            head, groups = f"{self.sport}_headline", [f"{self.sport}_body", f"{self.sport}_results"]
        else:
            self.sport = ""
            head, groups = "headline_news", ["general", "general", "economy"]
        planned: list[tuple[str, bool]] = []
        if n >= 3:
            planned.append((head, rng.random() < 0.75))
        if not self.sport and n >= 5 and rng.random() < 0.3:
            planned.append(("byline", False))
        if n - len(planned) >= 2:
            planned.append(("dateline", False))
        while len(planned) < n:
            planned.append((rng.choice(groups), False))
        return [self.sentence(self.pick(group), caps=caps) for group, caps in planned]

    def body(self, n: int) -> list[Sentence]:
        """``n`` running-text sentences (no headline, dateline or results) for raw text."""
        self.new_document()
        groups = ["general", "general", "economy"]
        return [self.sentence(self.pick(self.rng.choice(groups))) for _ in range(n)]


def generate(n_sentences: int, seed: int, split: str | None = None) -> list[Document]:
    """Generate ``n_sentences`` tagged sentences grouped into documents of 3-12 sentences.

    Returns a list of documents; a document is a list of sentences; a sentence is a list
    of ``(word, POS, chunk, NER)`` tuples with IOB1 chunk and NER tags. ``split`` picks a
    part of the gazetteers ("train", "dev", "test"; None: all of them), so that splits
    share only some of their entity names. The result depends only on the arguments.
    """
    if n_sentences < 0:
        raise ValueError("n_sentences must be >= 0")
    rng = random.Random(seed)
    builder = _Builder(rng, _Gazetteers(split))
    documents: list[Document] = []
    left = n_sentences
    while left > 0:
        size = rng.randint(3, 12)
        if left - size < 3:  # never leave a runt document at the end
            size = left if left <= 12 else left - 3
        documents.append(builder.document(size))
        left -= size
    return documents


def write_conll(path: str | Path, documents: Sequence[Document]) -> None:
    """Write documents in CoNLL-2003 format, each starting with a -DOCSTART- line."""
    lines = []
    for doc in documents:
        lines.append(" ".join(DOCSTART))
        lines.append("")
        for sent in doc:
            for token in sent:
                if len(token) != 4 or any(not f or any(c.isspace() for c in f) for f in token):
                    raise ValueError(f"bad token {token!r}")
                lines.append(" ".join(token))
            lines.append("")
    Path(path).write_text("\n".join(lines) + "\n" if lines else "", encoding="utf-8", newline="\n")


_NO_SPACE_BEFORE = frozenset({".", ",", ":", ";", ")", "'s", "?", "!"})
_NO_SPACE_AFTER = frozenset({"(", "$"})


def detokenize(words: Sequence[str]) -> str:
    """Join tokens into ordinary text: no space before punctuation, quotes hug their text."""
    out = ""
    quote_open = False
    glue = True  # no space before the next token
    for w in words:
        if w == '"':
            if quote_open:
                out += w
                glue = False
            else:
                out += ("" if glue else " ") + w
                glue = True
            quote_open = not quote_open
            continue
        if w in _NO_SPACE_BEFORE:
            out += w
        else:
            out += ("" if glue else " ") + w
        glue = w in _NO_SPACE_AFTER
    return out


def generate_text(n_paragraphs: int, seed: int, split: str | None = None) -> str:
    """Raw, untokenised news text: paragraphs of 3-5 generated sentences, wrapped at 78."""
    rng = random.Random(seed)
    builder = _Builder(rng, _Gazetteers(split))
    paragraphs = []
    for _ in range(n_paragraphs):
        sentences = builder.body(rng.randint(3, 5))
        text = " ".join(detokenize([t[0] for t in s]) for s in sentences)
        paragraphs.append(textwrap.fill(text, width=78, break_on_hyphens=False,
                                        break_long_words=False))
    return "\n\n".join(paragraphs) + "\n"


def entities(sentence: Sentence) -> list[tuple[str, str]]:
    """The (type, text) entities of an IOB1-tagged sentence, in order."""
    found: list[tuple[str, list[str]]] = []
    prev = "O"
    for word, _, _, tag in sentence:
        if tag == "O":
            prev = "O"
            continue
        prefix, etype = tag.split("-", 1)
        if prefix == "B" or prev != etype:
            found.append((etype, [word]))
        else:
            found[-1][1].append(word)
        prev = etype
    return [(etype, " ".join(words)) for etype, words in found]


def stats(documents: Sequence[Document]) -> dict[str, int]:
    """Counts of documents, sentences, tokens and entities (total and per type)."""
    sentences = [s for d in documents for s in d]
    counts = {"documents": len(documents), "sentences": len(sentences),
              "tokens": sum(len(s) for s in sentences), "entities": 0}
    counts.update({etype: 0 for etype in ENTITY_TYPES})
    for sentence in sentences:
        for etype, _ in entities(sentence):
            counts[etype] += 1
            counts["entities"] += 1
    return counts


SAMPLE_SIZES = {"train": 400, "dev": 100, "test": 100}


def write_sample(out_dir: str | Path = "data/sample", seed: int = 13) -> dict[str, Path]:
    """Write train.conll, dev.conll, test.conll and news.txt into ``out_dir``.

    Each split has its own seed (``seed``, ``seed + 1``, ``seed + 2``) and gazetteer part;
    news.txt (``seed + 3``) uses all gazetteers. Returns the written paths by name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for offset, split in enumerate(SPLITS):
        path = out / f"{split}.conll"
        write_conll(path, generate(SAMPLE_SIZES[split], seed + offset, split=split))
        written[split] = path
    news = out / "news.txt"
    news.write_text(generate_text(5, seed + 3), encoding="utf-8", newline="\n")
    written["news"] = news
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python data/make_sample.py",
        description="Write the bundled synthetic CoNLL-2003-style sample corpus.")
    parser.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "sample"),
                        help="default: data/sample beside this script")
    parser.add_argument("--seed", type=int, default=13, help="default: 13")
    args = parser.parse_args(argv)
    for name, path in write_sample(args.out_dir, args.seed).items():
        if path.suffix == ".conll":
            counts = stats(generate(SAMPLE_SIZES[name], args.seed + SPLITS.index(name), name))
            print(f"{path}: " + ", ".join(f"{n} {key}" for key, n in counts.items()))
        else:
            print(f"{path}: {len(path.read_text(encoding='utf-8').split())} words")


if __name__ == "__main__":
    main()
