from __future__ import annotations

import itertools

import pytest

from permanence.pii import ALL_TYPES, Entity, detect

from ._factories import iban_with_check, luhn_complete, nir_with_key

NIR = nir_with_key("1850578006084")
NIR_SPACED = " ".join([NIR[0], NIR[1:3], NIR[3:5], NIR[5:7], NIR[7:10], NIR[10:13], NIR[13:]])
IBAN = iban_with_check("FR", "30006000011234567890189")
IBAN_SPACED = " ".join(IBAN[i : i + 4] for i in range(0, len(IBAN), 4))
CARD = luhn_complete("497010123456789")
CARD_SPACED = " ".join(CARD[i : i + 4] for i in range(0, 16, 4))
SIREN = luhn_complete("73282932")
SIRET = luhn_complete(SIREN + "0007")
SIRET_SPACED = f"{SIRET[:3]} {SIRET[3:6]} {SIRET[6:9]} {SIRET[9:]}"


def found(text: str, types: list[str] | None = None) -> list[tuple[str, str]]:
    return [(e.type, e.text) for e in detect(text, types)]


def only(text: str, value: str, type_: str) -> None:
    """``value`` occurs once in ``text`` and is detected exactly, with correct offsets."""
    start = text.index(value)
    entities = [e for e in detect(text) if e.type == type_]
    assert entities == [Entity(type_, start, start + len(value), value)]


@pytest.mark.parametrize(
    "phone",
    [
        "06 12 34 56 78",
        "06.12.34.56.78",
        "0612345678",
        "06-12-34-56-78",
        "01 45 67 89 10",
        "+33 6 12 34 56 78",
        "+33 (0)6 12 34 56 78",
        "+33612345678",
        "0033 6 12 34 56 78",
        "+44 20 7946 0958",
        "+32 2 555 12 34",
        "+41 22 345 67 89",
        "0 805 12 34 56",
    ],
)
def test_phone_formats(phone: str) -> None:
    only(f"Rappeler au {phone} avant 18h.", phone, "PHONE")


@pytest.mark.parametrize(
    "text",
    [
        "Commande n° 2025 118532 livrée.",
        "Prix : 1 250,00 € TTC",
        "RDV à 14h30 le 12/03/2025",
        "Secteur 69003, code 4521",
        "Numéro fiscal 1234567890123",
        "+44 20 1234",  # too short to be a UK number
    ],
)
def test_numbers_that_are_not_phones(text: str) -> None:
    assert [e for e in detect(text) if e.type == "PHONE"] == []


def test_email() -> None:
    only(
        "Écrire à claire.martin+rdv@cabinet-durand.fr svp",
        "claire.martin+rdv@cabinet-durand.fr",
        "EMAIL",
    )
    only("mail: j.dupont@orange.fr.", "j.dupont@orange.fr", "EMAIL")


def test_dictated_email() -> None:
    text = "c'est jean point dupont arobase gmail point com merci"
    only(text, "jean point dupont arobase gmail point com", "EMAIL")


def test_nir_detected_and_wrong_key_ignored() -> None:
    only(f"Sécu : {NIR_SPACED}.", NIR_SPACED, "NIR")
    only(f"NIR {NIR}", NIR, "NIR")
    bad = NIR[:-2] + f"{int(NIR[-2:]) % 97 + 1:02d}"
    assert found(f"NIR {bad}") == []


@pytest.mark.parametrize(
    "written",
    [
        f"{NIR_SPACED[:-3]} - {NIR[-2:]}",
        f"{NIR_SPACED[:-3]} / {NIR[-2:]}",
        f"{NIR_SPACED[:-3]} clé {NIR[-2:]}",
        f"{NIR_SPACED[:-3]} Clé : {NIR[-2:]}",
        f"{NIR_SPACED[:-3]} ({NIR[-2:]})",
        NIR_SPACED.replace(" ", "."),
        f"{NIR[:13]} {NIR[13:]}",
    ],
)
def test_nir_with_its_key_set_apart_the_usual_ways(written: str) -> None:
    only(f"Patient, n° de sécu {written}, rappeler.", written, "NIR")
    head, key, tail = written.rpartition(NIR[-2:])
    wrong = f"{head}{int(key) % 97 + 1:02d}{tail}"  # the same writing, a wrong key
    assert [e for e in detect(f"sécu {wrong}") if e.type == "NIR"] == []


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("Tél.06 12 34 56 78", ["06 12 34 56 78"]),
        ("Tél. 06 12 34 56 78.", ["06 12 34 56 78"]),
        ("06 12 34 56 78/06 98 76 54 32", ["06 12 34 56 78", "06 98 76 54 32"]),
        ("le 12/06/2024 au 0612345678", ["0612345678"]),
        ("tel:+33 6 12 34 56 78", ["+33 6 12 34 56 78"]),
    ],
)
def test_phones_after_an_abbreviation_or_a_slash(text: str, phones: list[str]) -> None:
    assert [e.text for e in detect(text) if e.type == "PHONE"] == phones


def test_a_decimal_is_not_the_start_of_a_phone() -> None:
    assert [e for e in detect("coef 3,0612345678 et 2.0612345678") if e.type == "PHONE"] == []


def test_nir_corsica() -> None:
    nir = nir_with_key("28506" + "2A" + "004012")
    only(f"sécu {nir} ok", nir, "NIR")


def test_iban_detected_and_cut_at_country_length() -> None:
    text = f"IBAN {IBAN_SPACED} MERCI"
    only(text, IBAN_SPACED, "IBAN")
    bad = IBAN[:2] + f"{(int(IBAN[2:4]) + 1) % 100:02d}" + IBAN[4:]
    assert found(f"IBAN {bad}") == []


def test_card_detected_with_expiry_and_luhn_failure_ignored() -> None:
    only(f"carte {CARD_SPACED} exp 12/27", CARD_SPACED, "CARD")
    bad = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)
    assert found(f"carte {bad}") == []


def test_siren_needs_context_siret_does_not() -> None:
    only(f"SIREN {SIREN}", SIREN, "SIREN")
    assert found(f"colis {SIREN}") == []  # a Luhn-valid 9-digit number alone is too weak
    only(f"fournisseur {SIRET_SPACED} livré", SIRET_SPACED, "SIRET")
    bad = SIRET[:-1] + str((int(SIRET[-1]) + 1) % 10)
    assert found(f"SIRET {bad}") == []


def test_siret_is_not_a_card_or_phone() -> None:
    assert found(f"SIRET {SIRET}") == [("SIRET", SIRET)]


def test_date_of_birth_needs_a_cue() -> None:
    only("Mme X, née le 3 mai 1950, rappelle", "3 mai 1950", "DATE_OF_BIRTH")
    only("DDN : 12/03/85", "12/03/85", "DATE_OF_BIRTH")
    only("date de naissance 1er janvier 1962", "1er janvier 1962", "DATE_OF_BIRTH")
    assert found("RDV le 12/03/2025 à 10h") == []


def test_address() -> None:
    only(
        "Chantier au 12 bis rue de la République, 69002 Lyon, 3e étage.",
        "12 bis rue de la République, 69002 Lyon",
        "ADDRESS",
    )
    only("j'habite au 3 rue des lilas rappelez moi", "3 rue des lilas", "ADDRESS")
    assert found("il reste 1 place de libre jeudi") == []
    assert found("secteur 69003 uniquement") == []


def test_person_after_titles_and_cues() -> None:
    assert found("Mme Le Goff et M. Jean-Pierre DUPONT", ["PERSON"]) == [
        ("PERSON", "Le Goff"),
        ("PERSON", "Jean-Pierre DUPONT"),
    ]
    assert found("de la part de Maître Lefebvre", ["PERSON"]) == [("PERSON", "Lefebvre")]
    assert found("bonjour je m'appelle paul girard je voudrais", ["PERSON"]) == [
        ("PERSON", "paul girard")
    ]
    assert found("Nom : Moreau, prénom : Karine", ["PERSON"]) == [
        ("PERSON", "Moreau"),
        ("PERSON", "Karine"),
    ]


def test_titles_followed_by_common_nouns_are_not_names() -> None:
    for text in (
        "Madame la juge a décalé l'audience",
        "Monsieur le maire rappellera",
        "Madame la directrice de l'école",
        "Me rappeler demain",
        "Bonjour Madame, merci",
    ):
        assert found(text, ["PERSON"]) == [], text


def test_health_lexicon_matching() -> None:
    text = "Patiente DIABÉTIQUE, douleurs thoraciques, crise d’épilepsie, sage femme, hôpitaux"
    assert [t for _, t in found(text)] == [
        "DIABÉTIQUE",
        "douleurs thoraciques",
        "crise d’épilepsie",
        "sage femme",
        "hôpitaux",
    ]


def test_health_word_boundaries_and_ambiguous_words() -> None:
    assert found("les diabétiquement parlant", ["HEALTH"]) == []
    for text in (
        "La tension est à 230 V",
        "Le scanner de l'accueil est en panne",
        "Un virus sur le PC",
        "Le plâtre du plafond est tombé",
        "La greffe du tribunal a appelé",
        "Injection SQL sur le formulaire",
        "L'ordonnance de référé est arrivée",
    ):
        assert found(text, ["HEALTH"]) == [], text


def test_overlap_prefers_validated_longer_types() -> None:
    text = f"Remboursement sur {IBAN_SPACED} à la clinique"
    types = [e.type for e in detect(text)]
    assert types == ["IBAN", "HEALTH"]
    entities = detect("Cabinet au 4 rue du Docteur Roux 75015 Paris")
    assert [(e.type, e.text) for e in entities] == [
        ("ADDRESS", "4 rue du Docteur Roux 75015 Paris")
    ]


def test_results_sorted_non_overlapping_and_offsets_exact() -> None:
    text = (
        f"M. Martin, né le 12/03/1985, tél 06 12 34 56 78, {NIR_SPACED}, carte {CARD}, "
        "diabète, 5 avenue Foch 75116 Paris, martin@free.fr"
    )
    entities = detect(text)
    assert {e.type for e in entities} == {
        "PERSON", "DATE_OF_BIRTH", "PHONE", "NIR", "CARD", "HEALTH", "ADDRESS", "EMAIL"
    }  # fmt: skip
    for a, b in itertools.pairwise(entities):
        assert a.end <= b.start
    for e in entities:
        assert text[e.start : e.end] == e.text


def test_types_filter_and_unknown_type() -> None:
    text = "Mme Martin au 06 12 34 56 78"
    assert found(text, ["PHONE"]) == [("PHONE", "06 12 34 56 78")]
    assert detect(text, []) == []
    with pytest.raises(ValueError, match="BOGUS"):
        detect(text, ["BOGUS"])
    assert detect("") == []
    assert set(ALL_TYPES) == {
        "PHONE", "EMAIL", "NIR", "IBAN", "CARD", "SIREN", "SIRET",
        "DATE_OF_BIRTH", "ADDRESS", "PERSON", "HEALTH",
    }  # fmt: skip


def test_entity_to_dict() -> None:
    e = Entity("PHONE", 3, 17, "06 12 34 56 78")
    assert e.to_dict() == {"type": "PHONE", "start": 3, "end": 17, "text": "06 12 34 56 78"}


def test_adjacent_identifiers_are_all_found() -> None:
    assert found("tél 0612345678 0698765432") == [
        ("PHONE", "0612345678"),
        ("PHONE", "0698765432"),
    ]
    other = iban_with_check("FR", "20041010050500013020606")
    assert found(f"{IBAN} {other}") == [("IBAN", IBAN), ("IBAN", other)]
    card2 = luhn_complete("535012345678901")
    assert found(f"cartes {CARD} {card2}") == [("CARD", CARD), ("CARD", card2)]


def test_identifiers_inside_longer_numbers_are_ignored() -> None:
    # A Luhn-valid 14-digit slice of a 15-digit NIR with a wrong key is not a SIRET.
    bad_nir = NIR[:-2] + f"{int(NIR[-2:]) % 97 + 1:02d}"
    assert found(f"sécu {bad_nir[0]} {bad_nir[1:]}") == []
    assert found("Version 10.0.19045.3693 installée") == []
