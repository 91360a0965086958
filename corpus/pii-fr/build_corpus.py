# ruff: noqa: E501, S311  (template data lines are long; the seeded RNG is for fixtures)
"""Build the labelled French PII evaluation corpus (corpus.jsonl).

Deterministic (fixed seed). Sentences are call notes written for this corpus in four
domains; structured values are synthetic and generated here with valid check digits
(or deliberately invalid ones for hard negatives), so offsets are computed, never typed.

Template markup:
  {KIND}            a generated value (see GENERATORS); labelled with its type, or not
                    labelled for the hard-negative kinds (BAD_*, ORDER, PRICE, ...).
  [[TYPE:text]]     a literal span labelled TYPE (health terms, names in free text).

Annotation conventions (also in docs/pii.md):
  PERSON        the name only, without the title ("Mme [[PERSON:Martin]]").
  ADDRESS       from the street number to the end of the street name, plus the postcode
                and city when they follow directly.
  DATE_OF_BIRTH the date only, without its cue ("née le [[...]]").
  HEALTH        the smallest phrase that carries the health meaning.

Run: python corpus/pii-fr/build_corpus.py   (writes corpus.jsonl next to this file)
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import phonenumbers

Segment = tuple[str, str | None]
SEED = 20240611
N_PER_TEMPLATE = 4

rng = random.Random(SEED)

# --------------------------------------------------------------------------- checksums


def luhn_digit(partial: str) -> str:
    """Check digit that makes partial + digit Luhn-valid."""
    for d in "0123456789":
        total = 0
        for i, ch in enumerate(reversed(partial + d)):
            v = int(ch)
            if i % 2 == 1:
                v *= 2
                if v > 9:
                    v -= 9
            total += v
        if total % 10 == 0:
            return d
    raise AssertionError("unreachable")


def iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


def digits(n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def group(s: str, sizes: list[int], sep: str = " ") -> str:
    out, i = [], 0
    for size in sizes:
        out.append(s[i : i + size])
        i += size
    if i < len(s):
        out.append(s[i:])
    return sep.join(p for p in out if p)


# --------------------------------------------------------------------------- phones


def fr_phone() -> Segment:
    first = rng.choice(["6", "6", "7", "1", "2", "3", "4", "5", "9"])
    rest = digits(8)
    national = "0" + first + rest
    pairs = [national[i : i + 2] for i in range(0, 10, 2)]
    fmt = rng.choice(
        ["spaces", "spaces", "spaces", "dots", "compact", "dashes", "intl", "intl0", "intlc", "00"]
    )
    text = {
        "spaces": " ".join(pairs),
        "dots": ".".join(pairs),
        "compact": national,
        "dashes": "-".join(pairs),
        "intl": "+33 " + first + " " + " ".join(pairs[1:]),
        "intl0": "+33 (0)" + first + " " + " ".join(pairs[1:]),
        "intlc": "+33" + first + rest,
        "00": "0033 " + first + " " + " ".join(pairs[1:]),
    }[fmt]
    return text, "PHONE"


_INTL_TEMPLATES = [
    ("GB", "+44 20 7946 ", 4),
    ("GB", "+44 7700 9", 5),
    ("BE", "+32 47", 7),
    ("BE", "+32 2 ", 7),
    ("CH", "+41 79 ", 7),
    ("CH", "+41 22 ", 7),
    ("DE", "+49 151 ", 8),
    ("ES", "+34 6", 8),
    ("IT", "+39 347 ", 7),
    ("CA", "+1 514 ", 7),
    ("MA", "+212 6", 8),
    ("LU", "+352 621 ", 6),
]


def intl_phone() -> Segment:
    for _ in range(1000):
        _region, prefix, n = rng.choice(_INTL_TEMPLATES)
        raw = prefix + digits(n)
        number = phonenumbers.parse(raw, None)
        if phonenumbers.is_valid_number(number):
            style = rng.choice(["intl", "intl", "00"])
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            if style == "00":
                text = "00" + text[1:]
            return text, "PHONE"
    raise AssertionError("no valid international number generated")


# --------------------------------------------------------------------------- people

FIRST_F = [
    "Claire",
    "Sophie",
    "Fatima",
    "Julie",
    "Marie",
    "Camille",
    "Léa",
    "Inès",
    "Hélène",
    "Anne-Sophie",
    "Mathilde",
    "Nathalie",
    "Amandine",
    "Chloé",
    "Sylvie",
    "Émilie",
    "Océane",
    "Brigitte",
    "Aurélie",
    "Josiane",
    "Mélanie",
    "Samia",
    "Valérie",
    "Laëtitia",
    "Agnès",
    "Françoise",
    "Aïcha",
    "Nadège",
]
FIRST_M = [
    "Jean",
    "Nicolas",
    "Mohamed",
    "Pierre",
    "Luc",
    "Thomas",
    "Karim",
    "Jean-Pierre",
    "Yves",
    "Éric",
    "Bruno",
    "Rachid",
    "Gérard",
    "Youssef",
    "Kevin",
    "Damien",
    "Hugo",
    "Patrice",
    "Théo",
    "Antoine",
    "Mamadou",
    "Olivier",
    "Loïc",
    "Stéphane",
]
FIRST = FIRST_F + FIRST_M
LAST = [
    "Martin", "Bernard", "Dubois", "Durand", "Leroy", "Moreau", "Laurent", "Lefebvre",
    "Garcia", "Bertrand", "Roux", "Fournier", "Morel", "Girard", "Lefèvre", "Mercier",
    "Dupont", "Lambert", "Bonnet", "Martinez", "Legrand", "Garnier", "Faure", "Rousseau",
    "Blanc", "Guérin", "Muller", "Roussel", "Perrin", "Morin", "Mathieu", "Clément",
    "Gauthier", "Dumont", "Lopez", "Fontaine", "Chevalier", "Le Goff", "Nguyen", "Benali",
    "Haddad", "Diallo", "Traoré", "N'Diaye", "Da Silva", "Le Gall", "Kowalski", "Boyer",
    "Caron", "Masson", "Brunet", "Renaud", "Schmitt", "Colin", "Vidal", "Hoarau", "Payet",
    "Lemaire", "Barbier", "Marchand", "Aubert", "Carpentier", "Rey", "Joly", "Gaillard",
]  # fmt: skip
TITLES_M = ["M.", "M.", "Monsieur", "Mr"]
TITLES_F = ["Mme", "Mme", "Madame", "Mlle"]


def last_name() -> str:
    name = rng.choice(LAST)
    return name.upper() if rng.random() < 0.15 else name


def full_name(firsts: list[str] = FIRST) -> str:
    return f"{rng.choice(firsts)} {last_name()}"


def person() -> list[Segment]:
    """Title + name; only the name is labelled."""
    return person_f() if rng.random() < 0.5 else person_m()


def person_f() -> list[Segment]:
    title = rng.choice(TITLES_F)
    name = last_name() if rng.random() < 0.6 else full_name(FIRST_F)
    return [(title + " ", None), (name, "PERSON")]


def person_m() -> list[Segment]:
    title = rng.choice(TITLES_M)
    name = last_name() if rng.random() < 0.6 else full_name(FIRST_M)
    return [(title + " ", None), (name, "PERSON")]


def doctor() -> list[Segment]:
    title = rng.choice(["Dr", "Dr", "Dr.", "Docteur"])
    name = last_name() if rng.random() < 0.7 else full_name()
    return [(title + " ", None), (name, "PERSON")]


def lawyer() -> list[Segment]:
    title = rng.choice(["Me", "Me", "Maître"])
    name = last_name() if rng.random() < 0.7 else full_name()
    return [(title + " ", None), (name, "PERSON")]


def name_only() -> Segment:
    return (full_name() if rng.random() < 0.7 else last_name()), "PERSON"


def email() -> Segment:
    first = rng.choice(FIRST)
    last = rng.choice(LAST)
    plain = (
        (first + "." + last)
        .lower()
        .translate(str.maketrans("éèëïçîôâ' ", "eeeicioa--"))
        .replace("--", "-")
    )
    local = rng.choice(
        [
            plain,
            plain,
            plain.split(".")[0][0] + plain.split(".")[1],
            plain.replace(".", "_") + str(rng.randint(1, 99)),
            plain + "+rdv",
            plain.split(".")[1],
        ]
    )
    domain = rng.choice(
        [
            "gmail.com", "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "hotmail.fr",
            "sfr.fr", "yahoo.fr", "outlook.com", "protonmail.com", "cabinet-durand-avocats.fr",
            "plomberie-martin.fr", "chu-lyon.fr", "mail.example-entreprise.fr", "icloud.com",
        ]
    )  # fmt: skip
    return local + "@" + domain, "EMAIL"


# --------------------------------------------------------------------------- identifiers


def nir_body() -> str:
    sex = rng.choice("12")
    yy = f"{rng.randint(30, 99):02d}" if rng.random() < 0.8 else f"{rng.randint(0, 15):02d}"
    mm = f"{rng.randint(1, 12):02d}"
    dept = rng.choice(["75", "69", "13", "33", "59", "2A", "2B", "31", "44", "06", "93", "38"])
    return sex + yy + mm + dept + f"{rng.randint(1, 999):03d}" + f"{rng.randint(1, 999):03d}"


def nir_key(body: str) -> int:
    num = body.replace("2A", "19").replace("2B", "18")
    return 97 - int(num) % 97


def format_nir(body: str, key: int) -> str:
    k = f"{key:02d}"
    style = rng.choice(["grouped", "grouped", "compact", "compact_key"])
    if style == "grouped":
        return " ".join([body[0], body[1:3], body[3:5], body[5:7], body[7:10], body[10:13], k])
    if style == "compact":
        return body + k
    return body + " " + k


def nir() -> Segment:
    body = nir_body()
    return format_nir(body, nir_key(body)), "NIR"


def bad_nir() -> Segment:
    body = nir_body()
    key = nir_key(body)
    return format_nir(body, (key % 97) + 1), None  # always a wrong key


def iban_value(valid: bool) -> str:
    country = rng.choice(["FR", "FR", "FR", "FR", "BE", "DE", "ES"])
    bban = {
        "FR": digits(5) + digits(5) + digits(11) + digits(2),
        "BE": digits(12),
        "DE": digits(18),
        "ES": digits(20),
    }[country]
    check = iban_check(country, bban)
    if not valid:
        check = f"{(int(check) + rng.randint(1, 50)) % 100:02d}"
        if check in ("00", "01"):
            check = "55"
    raw = country + check + bban
    return group(raw, [4] * 9) if rng.random() < 0.75 else raw


def iban() -> Segment:
    return iban_value(True), "IBAN"


def bad_iban() -> Segment:
    return iban_value(False), None


def card_value(valid: bool) -> str:
    kind = rng.choice(["visa", "visa", "mc", "amex"])
    if kind == "amex":
        partial = rng.choice(["34", "37"]) + digits(12)
        sizes = [4, 6, 5]
    else:
        partial = ("4" if kind == "visa" else rng.choice(["51", "53", "55"])) + digits(
            15 - (1 if kind == "visa" else 2)
        )
        sizes = [4, 4, 4, 4]
    check = luhn_digit(partial)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    raw = partial + check
    sep = rng.choice([" ", " ", "-", ""])
    return group(raw, sizes, sep) if sep else raw


def card() -> Segment:
    return card_value(True), "CARD"


def bad_card() -> Segment:
    return card_value(False), None


def siren_digits() -> str:
    partial = rng.choice("3456789") + digits(7)
    return partial + luhn_digit(partial)


def siren() -> Segment:
    s = siren_digits()
    return (group(s, [3, 3, 3]) if rng.random() < 0.7 else s), "SIREN"


def siret_value(valid: bool) -> str:
    partial = siren_digits() + "000" + digits(1)
    check = luhn_digit(partial)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    s = partial + check
    return group(s, [3, 3, 3, 5]) if rng.random() < 0.7 else s


def siret() -> Segment:
    return siret_value(True), "SIRET"


def bad_siret() -> Segment:
    return siret_value(False), None


# --------------------------------------------------------------------------- dates, places

MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]


def dob() -> Segment:
    d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1931, 2019)
    style = rng.choice(["slash", "slash", "text", "text", "dots", "short", "dash"])
    text = {
        "slash": f"{d:02d}/{m:02d}/{y}",
        "text": f"{'1er' if d == 1 else d} {MONTHS[m - 1]} {y}",
        "dots": f"{d:02d}.{m:02d}.{y}",
        "short": f"{d:02d}/{m:02d}/{y % 100:02d}",
        "dash": f"{d:02d}-{m:02d}-{y}",
    }[style]
    return text, "DATE_OF_BIRTH"


def other_date() -> Segment:
    d, m = rng.randint(1, 28), rng.randint(1, 12)
    return rng.choice([f"{d:02d}/{m:02d}/2025", f"{d} {MONTHS[m - 1]}", f"{d:02d}/{m:02d}"]), None


STREETS = [
    "rue de la République", "avenue Jean Jaurès", "boulevard Haussmann", "rue Victor Hugo",
    "chemin des Vignes", "impasse des Lilas", "allée des Tilleuls", "place Bellecour",
    "route de Lyon", "quai de la Loire", "rue du 8 Mai 1945", "rue Pasteur",
    "avenue du Général de Gaulle", "rue Saint-Exupéry", "boulevard de la Croix-Rousse",
    "rue des Écoles", "chemin du Moulin", "rue de l'Église", "avenue Foch", "rue Nationale",
    "bd Gambetta", "rue Émile Zola", "rue des Acacias", "place du Marché", "rue Jules Ferry",
    "avenue de la Gare", "rue Pierre et Marie Curie", "route de Toulouse", "cours Mirabeau",
    "rue du Docteur Roux",
]  # fmt: skip
CITIES = [
    ("75011", "Paris"), ("69003", "Lyon"), ("13006", "Marseille"), ("31000", "Toulouse"),
    ("44000", "Nantes"), ("33000", "Bordeaux"), ("59800", "Lille"), ("67000", "Strasbourg"),
    ("38000", "Grenoble"), ("35000", "Rennes"), ("34000", "Montpellier"), ("06000", "Nice"),
    ("21000", "Dijon"), ("37000", "Tours"), ("69100", "Villeurbanne"),
    ("94100", "Saint-Maur-des-Fossés"), ("92100", "Boulogne-Billancourt"),
    ("20000", "Ajaccio"), ("97400", "Saint-Denis"), ("74000", "Annecy"),
]  # fmt: skip


def address() -> Segment:
    number = str(rng.randint(1, 180))
    r = rng.random()
    if r < 0.15:
        number += rng.choice([" bis", " ter", "bis"])
    street = rng.choice(STREETS)
    text = f"{number}{',' if rng.random() < 0.1 else ''} {street}"
    if rng.random() < 0.55:
        code, city = rng.choice(CITIES)
        text += rng.choice([", ", " "]) + f"{code} {city}"
    return text, "ADDRESS"


def postcode() -> Segment:
    return rng.choice(CITIES)[0], None


def order_number() -> Segment:
    return (
        rng.choice(
            [
                f"CMD-2025-{digits(6)}",
                f"n° {digits(4)} {digits(4)}",
                f"#{digits(5)}",
                f"{digits(9)}",
                f"FAC{digits(8)}",
                f"{digits(3)} {digits(3)} {digits(3)}",
            ]
        ),
        None,
    )


def price() -> Segment:
    return rng.choice(
        [f"{rng.randint(40, 900)} €", f"{rng.randint(1, 9)} {digits(3)},00 €", "89 € TTC"]
    ), None


def time_() -> Segment:
    h = rng.randint(8, 18)
    return rng.choice([f"{h}h30", f"{h}h", f"{h}:15", f"entre {h}h et {h + 2}h"]), None


Generator = Callable[[], Segment | list[Segment]]
GENERATORS: dict[str, Generator] = {
    "PHONE": fr_phone,
    "PHONE_INTL": intl_phone,
    "EMAIL": email,
    "NIR": nir,
    "IBAN": iban,
    "CARD": card,
    "SIREN": siren,
    "SIRET": siret,
    "DOB": dob,
    "ADDRESS": address,
    "PERSON": person,
    "PERSON_F": person_f,
    "PERSON_M": person_m,
    "DOCTOR": doctor,
    "LAWYER": lawyer,
    "NAME": name_only,
    "BAD_NIR": bad_nir,
    "BAD_IBAN": bad_iban,
    "BAD_CARD": bad_card,
    "BAD_SIRET": bad_siret,
    "ORDER": order_number,
    "PRICE": price,
    "TIME": time_,
    "DATE": other_date,
    "POSTCODE": postcode,
}

# --------------------------------------------------------------------------- templates

TEMPLATES: dict[str, list[str]] = {
    "medical": [
        "{PERSON} a appelé pour décaler son rendez-vous avec le {DOCTOR}, merci de la rappeler au {PHONE}.",
        "Patiente [[HEALTH:enceinte]] de 7 mois, [[HEALTH:contractions]] depuis ce matin, demande si elle doit aller à la [[HEALTH:maternité]]. Tél : {PHONE}.",
        "{PERSON_F}, née le {DOB}, souhaite un renouvellement de son [[HEALTH:traitement pour le diabète]], rappeler au {PHONE}.",
        "Message de {PERSON_F} : son fils a de la [[HEALTH:fièvre]] depuis deux jours et [[HEALTH:tousse]] beaucoup, elle voudrait passer avant {TIME}.",
        "Demande de RDV chez le [[HEALTH:cardiologue]] pour {PERSON} suite à des [[HEALTH:douleurs thoraciques]], numéro de sécu {NIR}.",
        "Le laboratoire a faxé les résultats de la [[HEALTH:prise de sang]] de {PERSON} (DDN {DOB}), à transmettre au {DOCTOR}.",
        "{PERSON_M} demande une [[HEALTH:ordonnance]] pour son [[HEALTH:insuline]], pharmacie fermée ce week-end, joignable au {PHONE}.",
        "Appel de la [[HEALTH:clinique]] : l'[[HEALTH:IRM]] de {PERSON_F} est reportée au {DATE}, prévenir la patiente par mail à {EMAIL}.",
        "Nouveau patient, {PERSON_M}, né le {DOB}, domicilié {ADDRESS}, n° de sécurité sociale {NIR}.",
        "{PERSON_M} rappelle pour ses [[HEALTH:séances de kiné]] après sa [[HEALTH:fracture]] du poignet, dispo le matin au {PHONE}.",
        "La mutuelle demande le relevé d'identité : IBAN {IBAN}, au nom de {NAME}.",
        "Mme [[PERSON:Lemoine]] signale que son mari, sous [[HEALTH:chimiothérapie]], a [[HEALTH:vomi]] toute la nuit ; rappeler en urgence au {PHONE}.",
        "Annulation du RDV de {TIME} pour {PERSON_F}, [[HEALTH:gastro]], elle reprendra RDV la semaine prochaine.",
        "Le {DOCTOR} demande qu'on rappelle {PERSON} pour lui communiquer le résultat de sa [[HEALTH:biopsie]] : {PHONE}.",
        "Patient [[HEALTH:diabétique]] de type 2, {PERSON}, [[HEALTH:glycémie]] à 3 g ce matin, veut un conseil rapide. Portable {PHONE}.",
        "Appel de {PERSON} pour un [[HEALTH:certificat de non contre-indication au sport]], pas d'urgence, mail {EMAIL}.",
        "{PERSON} veut savoir si le [[HEALTH:vaccin]] contre la [[HEALTH:grippe]] est disponible au cabinet, rappel au {PHONE}.",
        "Message vocal : bonjour, c'est {PERSON}, ma mère a fait une [[HEALTH:chute]], elle a très [[HEALTH:mal à la hanche]], on est au {ADDRESS}, rappelez-moi au {PHONE}.",
        "[[HEALTH:Téléconsultation]] demandée par {PERSON} (sécu {NIR}) pour une [[HEALTH:angine]], paiement par carte {CARD}.",
        "{PERSON_F} souhaite transmettre son dossier au [[HEALTH:psychiatre]] qui la suit pour [[HEALTH:dépression]], elle passera déposer les documents.",
        "Demande de transport en ambulance pour la [[HEALTH:dialyse]] de {PERSON}, départ {ADDRESS}, contact famille {PHONE}.",
        "RDV [[HEALTH:pédiatre]] pour le petit [[PERSON:Lucas]], 4 ans, [[HEALTH:otite]] probable, la maman {PERSON_F} est joignable au {PHONE}.",
        "{PERSON} appelle de l'étranger, numéro {PHONE_INTL}, pour une question sur son [[HEALTH:arrêt de travail]].",
        "La secrétaire du {DOCTOR} confirme le créneau de {TIME} pour l'[[HEALTH:échographie]] de {PERSON}.",
        "{PERSON_F} demande si elle peut prendre du [[HEALTH:Doliprane]] avec son [[HEALTH:anticoagulant]] ; réponse à lui faire par mail {EMAIL}.",
        "Rappel patient : {PERSON}, RDV le {DATE} à {TIME} avec le {DOCTOR}, bien apporter la carte Vitale.",
        "Feuille de soins à refaire pour {PERSON}, NIR {NIR}, la carte Vitale n'était pas à jour.",
        "Dépassement d'honoraires réglé par {PERSON} avec la carte {CARD}, reçu à envoyer à {EMAIL}.",
        "Mise à jour du dossier de {PERSON_F} : née le {DOB}, n° sécu {NIR}, nouveau portable {PHONE}.",
        "{PERSON} a donné un numéro de sécu qui ne passe pas : {BAD_NIR}, à redemander au prochain appel.",
    ],
    "legal": [
        "{PERSON} souhaite prendre rendez-vous avec {LAWYER} pour une procédure de divorce, rappeler au {PHONE}.",
        "Appel de {PERSON} concernant l'audience du {DATE} au tribunal judiciaire, joignable au {PHONE} ou par mail {EMAIL}.",
        "Nouveau client : {NAME}, gérant de la société immatriculée sous le SIREN {SIREN}, litige avec un fournisseur.",
        "{LAWYER} demande qu'on lui transmette les conclusions adverses avant {TIME} ; contact au cabinet {PHONE}.",
        "{PERSON} a reçu une ordonnance de référé et veut en parler à {LAWYER} rapidement, tél {PHONE}.",
        "La greffe a appelé pour le dossier {ORDER}, audience renvoyée au {DATE}.",
        "{PERSON_M}, né le {DOB}, demande des conseils sur une succession, domicile {ADDRESS}.",
        "Virement des honoraires à faire sur le compte du cabinet : IBAN {IBAN}, référence {ORDER}.",
        "{PERSON_M} conteste son licenciement ; il évoque un [[HEALTH:burn-out]] et un [[HEALTH:arrêt maladie]] de trois mois. Rappel au {PHONE}.",
        "Constitution de société : SIRET de l'établissement principal {SIRET}, gérante {NAME}, mail {EMAIL}.",
        "Appel de l'huissier {NAME} pour la signification prévue le {DATE}, numéro direct {PHONE}.",
        "{PERSON} a été victime d'un accident de la route, [[HEALTH:traumatisme crânien]], veut engager une procédure d'indemnisation. Contact : {EMAIL}.",
        "Madame la juge aux affaires familiales a décalé l'audience ; prévenir {PERSON} au {PHONE}.",
        "Le client {NAME} a réglé la provision de {PRICE} par carte {CARD}.",
        "{PERSON} demande une copie du jugement, adresse d'envoi : {ADDRESS}.",
        "Message de {LAWYER}, confrère à Bruxelles, joignable au {PHONE_INTL}, au sujet du dossier {ORDER}.",
        "Procédure de surendettement : {PERSON}, n° de sécurité sociale {NIR}, IBAN {IBAN}.",
        "Demande d'aide juridictionnelle de {PERSON_F}, née le {DOB}, en [[HEALTH:invalidité]] depuis 2019, tél {PHONE}.",
        "Rappeler Monsieur le bâtonnier au sujet de la permanence de {TIME}, pas de message particulier.",
        "{PERSON} signale que la partie adverse a changé d'adresse : {ADDRESS}.",
        "La société cliente (SIRET {SIRET}) conteste la facture {ORDER} d'un montant de {PRICE}.",
        "{PERSON_M} veut contester une amende, il était à l'[[HEALTH:hôpital]] ce jour-là ; il enverra le [[HEALTH:certificat médical]] à {EMAIL}.",
        "Appel de {PERSON} pour un bail commercial, SIREN {SIREN}, rappeler après {TIME}.",
        "{PERSON} souhaite modifier la pension alimentaire, son ex-conjoint est joignable au {PHONE}.",
        "Remboursement du trop-perçu à {PERSON} sur l'IBAN {IBAN}, dossier {ORDER}.",
        "La société adverse, SIRET {SIRET}, n'a pas répondu à la mise en demeure envoyée le {DATE}.",
        "Kbis reçu pour le client : SIREN {SIREN}, siège social au {ADDRESS}.",
    ],
    "trades": [
        "Fuite sous l'évier chez {PERSON}, {ADDRESS}, intervention souhaitée avant {TIME}, tél {PHONE}.",
        "{PERSON} signale une panne de chauffe-eau, client régulier, joignable au {PHONE}.",
        "Demande de devis pour rénovation électrique complète, {PERSON}, mail {EMAIL}, chantier au {ADDRESS}.",
        "Disjoncteur qui saute en permanence chez {PERSON}, la tension est à 190 V, rappeler au {PHONE}.",
        "Urgence : dégât des eaux au {ADDRESS}, la locataire {PERSON_F} est [[HEALTH:enceinte]] et ne peut pas monter sur l'échelle, tél {PHONE}.",
        "Facture {ORDER} de {PRICE} réglée par {PERSON} par carte {CARD}.",
        "Le fournisseur (SIRET {SIRET}) confirme la livraison du ballon de 200 L le {DATE}.",
        "{PERSON} souhaite un RDV pour l'entretien de la chaudière, de préférence {TIME}, rappel au {PHONE}.",
        "Client {NAME} : son père est en [[HEALTH:fauteuil roulant]], il faut adapter la salle de bains, devis à envoyer à {EMAIL}.",
        "Appel de {PERSON} pour un WC bouché au {ADDRESS}, passage possible après {TIME}.",
        "Chantier {ORDER} : le plâtre du plafond est tombé, {PERSON} demande un passage, tél {PHONE}.",
        "{PERSON} demande le RIB de l'entreprise pour payer l'acompte ; notre IBAN est {IBAN}.",
        "Le syndic {NAME} veut un devis pour la colonne d'eau, secteur {POSTCODE}, mail {EMAIL}.",
        "Coupure de courant chez {PERSON} qui a un [[HEALTH:concentrateur d'oxygène]] à domicile, priorité absolue, tél {PHONE}.",
        "{PERSON} rappelle, la pompe à chaleur fait toujours un bruit sourd, il est dispo le {DATE} entre {TIME}.",
        "Nouveau sous-traitant : {NAME}, SIRET {SIRET}, téléphone {PHONE}.",
        "Dépannage serrurerie pour {PERSON_F}, {ADDRESS}, elle sort de l'[[HEALTH:hôpital]] et ne peut pas attendre dehors.",
        "Message de {PERSON} : radiateur froid dans la chambre, rappeler au {PHONE} ou au {PHONE}.",
        "L'électricien {NAME} s'est [[HEALTH:brûlé]] la main sur le chantier {ORDER}, déclaration d'[[HEALTH:accident du travail]] à faire.",
        "{PERSON_M} a envoyé les photos du compteur à {EMAIL}, devis de {PRICE} accepté.",
        "Client de passage en France, {PERSON}, numéro {PHONE_INTL}, fuite sur la terrasse au {ADDRESS}.",
        "Pose de prises supplémentaires chez {PERSON_M} ; il précise qu'il est [[HEALTH:malentendant]], privilégier les SMS au {PHONE}.",
        "Le client {NAME} paie par virement, mais l'IBAN qu'il a dicté ({BAD_IBAN}) semble faux, le rappeler au {PHONE}.",
        "{PERSON} demande une attestation pour son assurance, numéro de contrat {ORDER}.",
        "Acompte de {PRICE} payé par {PERSON} par CB {CARD}, reste {PRICE} à la fin du chantier.",
        "Inscription fournisseur : SIRET {SIRET}, IBAN {IBAN}, contact {EMAIL}.",
        "Carte refusée ({BAD_CARD}), {PERSON} rappellera avec une autre carte.",
    ],
    "it": [
        "{PERSON} n'arrive plus à se connecter à sa messagerie {EMAIL}, rappeler au {PHONE}.",
        "Ticket {ORDER} : le serveur de fichiers est lent, contact {PERSON} au {PHONE}.",
        "{PERSON} signale un virus sur le poste de l'accueil, le scanner réseau ne répond plus.",
        "Réinitialisation du mot de passe demandée par {PERSON}, identifiant {EMAIL}.",
        "Le client (SIREN {SIREN}) souhaite résilier son contrat d'infogérance, interlocuteur {NAME}, tél {PHONE}.",
        "Paiement de l'abonnement refusé pour la carte {CARD}, prévenir {PERSON} par mail {EMAIL}.",
        "{PERSON_M} travaille depuis chez lui car il est en [[HEALTH:arrêt maladie]], il a besoin du VPN, portable {PHONE}.",
        "Installation d'un poste au cabinet du {DOCTOR}, {ADDRESS}, le logiciel médical doit être migré.",
        "Message de {PERSON} : l'imprimante HP du 2e étage affiche une erreur, rappeler au {PHONE}.",
        "Demande de création de compte pour {NAME}, nouvelle recrue, adresse {EMAIL}.",
        "{PERSON_M} appelle de Suisse au {PHONE_INTL}, le site web est inaccessible depuis {TIME}.",
        "Facture {ORDER} de {PRICE} ; le client a transmis l'IBAN {IBAN} pour le prélèvement.",
        "Intervention sur site chez {PERSON}, {ADDRESS}, accès par le parking, code portail donné par téléphone.",
        "{PERSON} demande un écran plus grand pour raisons médicales ([[HEALTH:malvoyant]]), validation RH en attente.",
        "Le fournisseur de fibre (SIRET {SIRET}) annonce une coupure le {DATE} entre {TIME}.",
        "{PERSON} a cliqué sur un lien de phishing, mot de passe changé, rappeler au {PHONE}.",
        "Sauvegarde échouée sur le NAS client {ORDER}, prévenir {PERSON} à {EMAIL}.",
        "Injection SQL détectée sur le formulaire de contact, {PERSON} demande un rapport complet.",
        "{PERSON_M} doit être rappelé avant {TIME} pour la migration Office 365, ligne directe {PHONE}.",
        "Le poste de {PERSON} redémarre en boucle depuis la mise à jour, il est dispo au {PHONE}.",
        "{PERSON} souhaite qu'on supprime ses données personnelles (RGPD), mail de confirmation à {EMAIL}.",
        "Commande de 3 licences pour le cabinet de {PERSON}, paiement par carte {CARD}, montant {PRICE}.",
        "Mise à jour du RIB pour le prélèvement de {PERSON} : {IBAN}.",
        "Le client a dicté sa carte {CARD} et son mail {EMAIL} pour l'abonnement, rappeler si refus.",
        "Ouverture de compte pour l'entreprise SIREN {SIREN}, contact {PERSON} au {PHONE}.",
        "Fiche salarié à créer : {PERSON_M}, né le {DOB}, NIR {NIR}, IBAN {IBAN}.",
    ],
}

# Hand-written notes and hard negatives, used once each.
FIXED: list[tuple[str, str]] = [
    ("medical", "RDV annulé pour la patiente de 10h, elle rappellera en fin de semaine."),
    (
        "medical",
        "Le cabinet sera fermé le 15 août, renvoyer les appels vers le 15 en cas d'urgence.",
    ),
    ("medical", "Livraison de gants et de compresses prévue jeudi, commande {ORDER}."),
    (
        "medical",
        "Mme [[PERSON:Fabre]] souhaite savoir si le [[HEALTH:dermatologue]] prend la carte Vitale.",
    ),
    (
        "medical",
        "Bonjour, je m'appelle [[PERSON:Nadia Cherif]], j'ai une [[HEALTH:rage de dents]] depuis hier soir, est-ce que le [[HEALTH:dentiste]] peut me prendre aujourd'hui ?",
    ),
    (
        "medical",
        "Message vocal : oui bonjour je m'appelle [[PERSON:paul girard]] je voudrais un rendez-vous pour mon [[HEALTH:asthme]] rappelez-moi merci.",
    ),
    (
        "medical",
        "Numéro de sécu donné par le patient : {BAD_NIR} (la clé ne correspond pas, à revérifier).",
    ),
    (
        "medical",
        "De la part de [[PERSON:Sandrine Hubert]] : elle est sortie des [[HEALTH:urgences]] hier, [[HEALTH:entorse]] de la cheville, demande un [[HEALTH:arrêt de travail]].",
    ),
    (
        "medical",
        "La patiente a dicté son mail : [[EMAIL:julie point mercier arobase gmail point com]].",
    ),
    (
        "medical",
        "Le [[HEALTH:kiné]] remplaçant commence lundi ; penser à mettre à jour l'agenda en ligne.",
    ),
    (
        "medical",
        "Madame la directrice de l'[[HEALTH:EHPAD]] voudrait parler au [[HEALTH:médecin]] coordonnateur, sans urgence.",
    ),
    (
        "medical",
        "La fille de M. [[PERSON:Rolland]], atteint de la [[HEALTH:maladie d'Alzheimer]], demande une place en accueil de jour.",
    ),
    (
        "medical",
        "Patient né en [[DATE_OF_BIRTH:1958]], [[HEALTH:hypertension]] connue, demande un rendez-vous le 3 mars à 9h.",
    ),
    (
        "medical",
        "Prendre le dossier de Mme [[PERSON:Baptiste]] : [[HEALTH:grossesse]] à risque, suivi par la [[HEALTH:sage-femme]] tous les 15 jours.",
    ),
    ("legal", "Le cabinet sera fermé du 24 décembre au 2 janvier, répondeur activé."),
    (
        "legal",
        "Monsieur le maire de la commune souhaite être rappelé au sujet du permis de construire.",
    ),
    ("legal", "Rappel : l'audience est à 14h30, salle 4, apporter les pièces 12 à 18."),
    ("legal", "Provision de 1 500,00 € reçue, reste à payer 750 € avant le 30/06."),
    ("legal", "Le client a donné un SIRET erroné ({BAD_SIRET}), demander un extrait Kbis."),
    (
        "legal",
        "Nom : [[PERSON:Moreau]], prénom : [[PERSON:Karine]], objet : contestation d'un testament.",
    ),
    (
        "legal",
        "Maître [[PERSON:Delacroix]] sera en audience toute la matinée, proposer un rappel à partir de 14h.",
    ),
    (
        "legal",
        "Le délai de prescription est de cinq ans pour ce type d'action, vérifier la date du premier acte.",
    ),
    (
        "legal",
        "Audience de conciliation fixée au 12/09/2025 à 9h, tribunal de proximité de Villeurbanne.",
    ),
    ("legal", "Le numéro de RG est 24/01873, chambre 3, à reporter sur le courrier."),
    ("trades", "Code postal du chantier : {POSTCODE}, pas d'adresse précise pour l'instant."),
    (
        "trades",
        "Le client a payé 2 350 € en deux fois, reste le solde de 480 € à la réception des travaux.",
    ),
    ("trades", "Tension mesurée à 230 V entre phase et neutre, rien d'anormal."),
    ("trades", "Le ballon d'eau chaude fait 200 litres, la réf. du modèle est TH-200-VS2."),
    ("trades", "Intervention prévue entre 8h et 10h, le client laissera la clé chez la gardienne."),
    ("trades", "Il reste 1 place de libre dans le planning de jeudi après-midi."),
    ("trades", "Carte bancaire refusée, numéro dicté {BAD_CARD}, le client rappellera."),
    (
        "trades",
        "Nom du client : [[PERSON:Benoît Lacombe]], il demande le passage d'un électricien pour un tableau vétuste.",
    ),
    (
        "trades",
        "bonjour c'est pour une fuite j'habite au [[ADDRESS:12 rue des lilas]] rappelez moi vite.",
    ),
    (
        "trades",
        "De la part de [[PERSON:Michel]] du chantier de la rue Pasteur : livraison du placo demain 7h.",
    ),
    (
        "trades",
        "Madame [[PERSON:Vasseur]] est [[HEALTH:handicapée]], prévoir une rampe pour l'accès à la douche.",
    ),
    (
        "trades",
        "Le chauffagiste a remplacé la sonde de température, facture envoyée, prix 128 € TTC.",
    ),
    ("it", "Le serveur répond en 200 ms, le ping vers 8.8.8.8 est stable."),
    ("it", "Version 10.0.19045.3693 installée sur les 12 postes, redémarrage prévu à 18h."),
    ("it", "La licence expire le 31/12/2025, numéro de série 4512-8875-1123-0098."),
    ("it", "Mot de passe Wi-Fi oublié, la box est une Livebox 6, numéro de série LK2208ABC1234."),
    ("it", "Le virus a été mis en quarantaine par l'antivirus, aucune donnée chiffrée."),
    (
        "it",
        "Mon nom est [[PERSON:Xavier Poulain]], je suis le nouveau responsable informatique de la mairie.",
    ),
    ("it", "Le scanner de l'accueil ne numérise plus en PDF, le pilote est à réinstaller."),
    ("it", "Commande n° 123456789 livrée au service comptable, trois claviers et deux souris."),
    (
        "it",
        "Le technicien [[PERSON:Romain]] a besoin d'un accès au local serveur vendredi, s'appelle [[PERSON:Romain Texier]] sur le badge.",
    ),
    ("it", "Adresse IP 192.168.1.254, masque 255.255.255.0, passerelle par défaut inchangée."),
    (
        "it",
        "L'utilisatrice est en [[HEALTH:congé maternité]], désactiver temporairement son compte.",
    ),
    (
        "it",
        "Contacter le support du fournisseur au [[PHONE:0 805 12 34 56]] (numéro vert) pour le renouvellement.",
    ),
]


# Written after the detector was tuned on the notes above, and never tuned on since:
# the evaluation reports these separately (ids "*-heldout-*") to expose overfitting.
HELD_OUT: list[tuple[str, str]] = [
    ("medical", "Rappeler [[PERSON:Josette Meunier]] au {PHONE}, c'est pour son mari qui a fait un [[HEALTH:AVC]] la semaine dernière."),
    ("medical", "tel fixe : {PHONE} / portable : {PHONE} — Mme [[PERSON:Oudin]] préfère le portable"),
    ("medical", "Le patient [[PERSON:Bruno Lévêque]], sécu {NIR}, sort de [[HEALTH:réanimation]] ; son épouse demande à parler au [[HEALTH:chirurgien]]."),
    ("medical", "[[HEALTH:Vaccination]] [[HEALTH:covid]] du petit [[PERSON:Nathan]] à reporter, il a une [[HEALTH:bronchiolite]]."),
    ("medical", "Mail reçu de {EMAIL} : demande de copie de son [[HEALTH:compte rendu opératoire]]."),
    ("medical", "Pour info la patiente est [[HEALTH:sourde]], la joindre uniquement par SMS au {PHONE}."),
    ("medical", "DDN : {DOB} — NIR : {NIR} — mutuelle MGEN."),
    ("medical", "Mme [[PERSON:Perret]] appelle pour sa mère, [[HEALTH:démence]] avancée ; elle demande une visite à domicile au {ADDRESS}."),
    ("medical", "Résultats [[HEALTH:PCR]] positifs pour M. [[PERSON:Gomes]], il faut prévenir son [[HEALTH:médecin traitant]]."),
    ("medical", "Patiente sous [[HEALTH:Levothyrox]], [[HEALTH:TSH]] à contrôler dans six semaines."),
    ("medical", "Tél. de la fille (Canada) : {PHONE_INTL}, elle gère le dossier de son père, atteint de [[HEALTH:Parkinson]]."),
    ("legal", "Dossier [[PERSON:Ferrand]] c/ [[PERSON:Ménard]] : l'audience du 14 est maintenue, prévenir le client au {PHONE}."),
    ("legal", "Maître, votre client M. [[PERSON:Aubry]] vous attend à l'accueil du tribunal."),
    ("legal", "Le témoin, Mme [[PERSON:Claudine Roche]], née le {DOB}, demeurant {ADDRESS}, accepte de témoigner."),
    ("legal", "Coordonnées bancaires du séquestre : {IBAN} (BIC AGRIFRPP882)."),
    ("legal", "La partie adverse est représentée par Me [[PERSON:Hamon]], {PHONE}, {EMAIL}."),
    ("legal", "L'ordonnance du juge des référés a été notifiée ce matin, aucune action immédiate."),
    ("legal", "Le client souffre de [[HEALTH:stress post-traumatique]] depuis l'agression ; il demande un report d'audience."),
    ("legal", "SIRET du débiteur : {SIRET} ; montant de la créance 12 480 €."),
    ("legal", "Numéro fiscal du client : 1234567890123, à ne pas confondre avec le NIR."),
    ("trades", "Intervention chez Mme [[PERSON:Girardin]], {ADDRESS}, digicode 4521B, 3e étage gauche."),
    ("trades", "Le client [[PERSON:Yannick]] rappelle : toujours pas d'eau chaude, il a un bébé de 3 semaines."),
    ("trades", "Chantier rue Lamartine : la cliente est [[HEALTH:asthmatique]], éviter les produits à solvant."),
    ("trades", "Prélèvement mensuel du contrat d'entretien sur {IBAN}, titulaire [[PERSON:Gilles Poirier]]."),
    ("trades", "RAS sur le chantier, le carreleur revient lundi 8h."),
    ("trades", "Numéro du gardien : {PHONE}, il a les clés de la cave."),
    ("trades", "Devis n° 2025-0412 accepté, montant 3 870,50 € TTC, signature électronique reçue."),
    ("trades", "Le client a dicté : [[EMAIL:marc point leroux arobase free point fr]], merci d'envoyer la facture."),
    ("trades", "M. [[PERSON:Lopes]] : compteur électrique à déplacer, il est sous [[HEALTH:dialyse]] à domicile donc pas de coupure longue."),
    ("it", "Le serveur mail rejette {EMAIL} depuis ce matin (erreur 550)."),
    ("it", "Poste de [[PERSON:Amélie]] (compta) : écran noir, elle est joignable au {PHONE}."),
    ("it", "Paiement Stripe échoué, carte se terminant par 4242, prévenir le client."),
    ("it", "Le prestataire (SIRET {SIRET}) facture 95 € HT de l'heure."),
    ("it", "Appel de [[PERSON:Sébastien Marty]] de la mairie, il a oublié son code PIN."),
    ("it", "Migration des 45 boîtes mail prévue le 12/11, coupure de 22h à 23h."),
    ("it", "Numéro de série du portable : 5CD1234XYZ, garantie jusqu'au 03/2027."),
    ("it", "Contact technique : [[PERSON:Hugo Ferreira]] <{EMAIL}>, portable {PHONE}."),
    ("it", "Carte pro de l'entreprise : {CARD}, expire fin 2027, plafond atteint."),
]  # fmt: skip


_MARKUP = re.compile(r"\{([A-Z_]+)\}|\[\[([A-Z_]+):(.+?)\]\]")


def render(template: str) -> tuple[str, list[dict[str, object]]]:
    """Expand a template into text and exact entity offsets."""
    out: list[str] = []
    entities: list[dict[str, object]] = []
    pos = 0
    length = 0

    def emit(text: str, label: str | None) -> None:
        nonlocal length
        if label is not None:
            entities.append({"type": label, "start": length, "end": length + len(text)})
        out.append(text)
        length += len(text)

    for m in _MARKUP.finditer(template):
        emit(template[pos : m.start()], None)
        if m.group(1):
            produced = GENERATORS[m.group(1)]()
            segments = produced if isinstance(produced, list) else [produced]
            for text, label in segments:
                emit(text, label)
        else:
            emit(m.group(3), m.group(2))
        pos = m.end()
    emit(template[pos:], None)
    text = "".join(out)
    for e in entities:
        assert isinstance(e["start"], int) and isinstance(e["end"], int)
        span = text[e["start"] : e["end"]]
        assert span and span == span.strip(), (template, span)
    return text, entities


def build() -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for domain, templates in TEMPLATES.items():
        for t_index, template in enumerate(templates):
            for k in range(N_PER_TEMPLATE):
                text, entities = render(template)
                records.append(
                    {"id": f"{domain}-{t_index:02d}-{k}", "domain": domain, "text": text,
                     "entities": entities}
                )  # fmt: skip
    for f_index, (domain, template) in enumerate(FIXED):
        text, entities = render(template)
        records.append(
            {"id": f"{domain}-fixed-{f_index:02d}", "domain": domain, "text": text,
             "entities": entities}
        )  # fmt: skip
    for h_index, (domain, template) in enumerate(HELD_OUT):
        text, entities = render(template)
        records.append(
            {"id": f"{domain}-heldout-{h_index:02d}", "domain": domain, "text": text,
             "entities": entities}
        )  # fmt: skip
    return records


def main() -> int:
    records = build()
    target = Path(__file__).with_name("corpus.jsonl")
    with target.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
