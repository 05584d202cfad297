"""The 005010X222A1 implementation guide (837P, professional claims), as data the walker runs.

What edi837 reads of an 837P, and nothing else: the loop table (which segment opens which loop
under which parent) and the facts taken from which element of which segment in which loop.
Source: ASC X12 005010X222A1 (pyx12's ``837.5010.X222.A1.xml``). An 837I (005010X223A2) would be
a second module like this one, with SV2 line facts: ``edi.claims.guide`` compiles either.
"""

from __future__ import annotations

from edi.claims.guide import HEADER, Fact, HierarchyLevel, ImplementationGuide, LoopRow

PROCEDURE_QUALIFIERS = ("HC", "ER", "IV", "WK")

LOOPS = (
    LoopRow(b"NM1", 1, (b"41",), "1000A", (HEADER,)),
    LoopRow(b"NM1", 1, (b"40",), "1000B", (HEADER, "1000A")),
    LoopRow(b"HL", 3, (b"20",), "2000A", (HEADER,)),
    LoopRow(b"HL", 3, (b"22",), "2000B", ("2000A", HEADER)),
    LoopRow(b"HL", 3, (b"23",), "2000C", ("2000B",)),
    LoopRow(b"NM1", 1, (b"85",), "2010AA", ("2000A",)),
    LoopRow(b"NM1", 1, (b"87",), "2010AB", ("2000A",)),
    LoopRow(b"NM1", 1, (b"PE",), "2010AC", ("2000A",)),
    LoopRow(b"NM1", 1, (b"IL",), "2010BA", ("2000B",)),
    LoopRow(b"NM1", 1, (b"PR",), "2010BB", ("2000B",)),
    LoopRow(b"NM1", 1, (b"QC",), "2010CA", ("2000C",)),
    LoopRow(b"CLM", 0, (), "2300", ("2000C", "2000B")),
    LoopRow(b"NM1", 1, (b"DN", b"P3"), "2310A", ("2300",)),
    LoopRow(b"NM1", 1, (b"82",), "2310B", ("2300",)),
    LoopRow(b"NM1", 1, (b"77",), "2310C", ("2300",)),
    LoopRow(b"NM1", 1, (b"DQ",), "2310D", ("2300",)),
    LoopRow(b"NM1", 1, (b"PW",), "2310E", ("2300",)),
    LoopRow(b"NM1", 1, (b"45",), "2310F", ("2300",)),
    LoopRow(b"SBR", 0, (), "2320", ("2300",)),
    LoopRow(b"NM1", 1, (b"IL",), "2330A", ("2320",)),
    LoopRow(b"NM1", 1, (b"PR",), "2330B", ("2320",)),
    LoopRow(b"NM1", 1, (b"DN", b"P3"), "2330C", ("2320",)),
    LoopRow(b"NM1", 1, (b"82",), "2330D", ("2320",)),
    LoopRow(b"NM1", 1, (b"77",), "2330E", ("2320",)),
    LoopRow(b"NM1", 1, (b"DQ",), "2330F", ("2320",)),
    LoopRow(b"NM1", 1, (b"85",), "2330G", ("2320",)),
    LoopRow(b"LX", 0, (), "2400", ("2300",)),
    LoopRow(b"LIN", 0, (), "2410", ("2400",)),
    LoopRow(b"NM1", 1, (b"82",), "2420A", ("2400",)),
    LoopRow(b"NM1", 1, (b"QB",), "2420B", ("2400",)),
    LoopRow(b"NM1", 1, (b"77",), "2420C", ("2400",)),
    LoopRow(b"NM1", 1, (b"DQ",), "2420D", ("2400",)),
    LoopRow(b"NM1", 1, (b"DK",), "2420E", ("2400",)),
    LoopRow(b"NM1", 1, (b"DN", b"P3"), "2420F", ("2400",)),
    LoopRow(b"NM1", 1, (b"PW",), "2420G", ("2400",)),
    LoopRow(b"NM1", 1, (b"45",), "2420H", ("2400",)),
    LoopRow(b"SVD", 0, (), "2430", ("2400",)),
    LoopRow(b"LQ", 0, (), "2440", ("2400",)),
)

# Context facts: read before a claim, in the hierarchy above it; a claim takes them when its
# CLM is read. Claim facts: from the CLM. Line facts: from the segments of a 2400 loop, in the
# order of the ``ServiceLine`` fields they fill.
FACTS = (
    Fact("billing_npi", b"NM1", "2010AA", 9, parse="text", when=(8, b"XX")),
    # The billing provider's tax ID: who billed, when the 2010AA NM1 carries no NPI (the rules
    # group lines per billing provider). Only REF*EI is read: the loop's other REFs leave it.
    Fact("billing_tax_id", b"REF", "2010AA", 2, parse="text_or_none", when=(1, b"EI")),
    Fact("filing_indicator", b"SBR", "2000B", 9, parse="text_or_none"),
    # Names, member IDs, birth dates and claim IDs are read "unique": one per person or claim,
    # so they are not kept in the value caches (memory would grow with the file).
    Fact("subscriber_id", b"NM1", "2010BA", 9, parse="unique"),
    Fact("subscriber_last_name", b"NM1", "2010BA", 3, parse="unique"),
    Fact("subscriber_first_name", b"NM1", "2010BA", 4, parse="unique"),
    Fact("subscriber_birth_date", b"DMG", "2010BA", 2, parse="unique"),
    Fact("payer_id", b"NM1", "2010BB", 9),
    Fact("patient_last_name", b"NM1", "2010CA", 3, parse="unique"),
    Fact("patient_first_name", b"NM1", "2010CA", 4, parse="unique"),
    Fact("patient_birth_date", b"DMG", "2010CA", 2, parse="unique"),
    Fact("claim_id", b"CLM", "2300", 1, parse="unique"),
    Fact("total_charge", b"CLM", "2300", 2, parse="amount"),
    Fact("place_of_service", b"CLM", "2300", 5, component=1, parse="text_or_none"),  # CLM05-1
    Fact("frequency_code", b"CLM", "2300", 5, component=3, parse="text_or_none"),  # CLM05-3
    # Where CLM02 stands and how it was written: a rewrite recounts it in the same style.
    Fact("total_charge_at", b"CLM", "2300", 2, parse="position"),
    Fact("total_charge_text", b"CLM", "2300", 2, parse="raw"),
    Fact("lx", b"LX", "2400", 1, parse="count"),
    # SV101-1, the product/service ID qualifier: the guide's code list for SV101-1 (HC: HCPCS and
    # CPT, ER: jurisdiction-specific, IV: home infusion EDI coalition, WK: advanced billing
    # concepts). Anything else means the procedure code cannot be read (BAD_PROCEDURE_QUALIFIER):
    # a file that declares ':' in ISA16 but writes SV1*HC>96414 read as qualifier "HC>96414" and no
    # code, and passed clean.
    Fact("qualifier", b"SV1", "2400", 1, component=1, parse="code", codes=PROCEDURE_QUALIFIERS),
    Fact("procedure_code", b"SV1", "2400", 1, component=2),  # SV101-2
    Fact("modifiers", b"SV1", "2400", 1, component=3, last_component=6, parse="text_list"),  # SV101-3..6
    Fact("charge", b"SV1", "2400", 2, parse="amount"),
    Fact("units", b"SV1", "2400", 4, parse="amount"),
    Fact("place_of_service", b"SV1", "2400", 5, parse="text_or_none"),
    Fact("procedure_code_at", b"SV1", "2400", 1, component=2, parse="position"),  # where a code is replaced
    # DTP*472: the service date, D8 or an RD8 range (the first DTP*472 of the line counts).
    Fact("service_date", b"DTP", "2400", 3, parse="period", when=(1, b"472"), first_only=True),
    # Another payer's adjudication on the claim: 2320 AMT*D (payer paid amount) and 2430 SVD
    # (line adjudication). Removing or recoding a line of such a claim would unbalance its
    # coordination-of-benefits amounts, so its lines are never rewritten.
    Fact("other_payer_paid", b"AMT", "2320", 1, parse="present", when=(1, b"D")),
    Fact("line_adjudicated", b"SVD", "2430", 1, parse="present", when=(0, b"SVD")),
)

X222A1 = ImplementationGuide(
    name="005010X222A1",
    kind="837P",
    family="005010X222",
    transaction_set=b"837",
    # 005010X222 and X222A2 share the X222A1 loop table (read with it, with a note).
    versions=(b"005010X222", b"005010X222A1", b"005010X222A2"),
    loops=LOOPS,
    hierarchy=(
        HierarchyLevel(b"20", "2000A"),
        HierarchyLevel(b"22", "2000B"),
        HierarchyLevel(b"23", "2000C"),
    ),
    claim_loop="2300",
    line_loop="2400",
    service_segment=b"SV1",
    # A claim ends at the next HL or CLM (or an envelope segment). Inside a claim only the line
    # loop is followed, and the two "present" facts above (AMT*D, SVD: segments found in no
    # other loop of a claim); none of the other loops' NM1 may be taken for the 2010BA subscriber.
    claim_ends_at=(b"HL", b"CLM"),
    dependent_loop="2000C",
    # Payer names repeat verbatim across a file, and so do the subscribers' SBR (a few payer
    # and filing combinations): their facts are parsed once per distinct segment.
    repeating_loops=frozenset({"2000B", "2010BB"}),
    facts=FACTS,
)
