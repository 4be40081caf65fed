"""Seeded English sentence generator with French and German reference translations.

The synthetic corpus speaks these sentences. A small parallel grammar produces each English sentence
together with its French and German translation: number phrases (spelled out with num2words in all
three languages), home-assistant commands, names, and short statements. Agreement is handled where the
templates need it (French adjective gender, German accusative articles, French feminine numbers are
avoided). About 270 English words in all (see :func:`vocabulary`).

English text follows LibriSpeech: upper case words, apostrophes kept, no other punctuation.
Translations are written in normal case without final punctuation, e.g.::

    TURN ON THE LIGHT IN THE KITCHEN
    fr: Allume la lumière dans la cuisine
    de: Schalte das Licht in der Küche ein
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from num2words import num2words

from speech_common.errors import UserError

LANGUAGES = ("fr", "de")


@dataclass(frozen=True)
class Sentence:
    """One generated sentence: LibriSpeech-style English ``text`` and ``translation`` by language."""

    text: str
    translation: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    kind: str = ""

    @property
    def words(self) -> list[str]:
        return self.text.split()


@dataclass(frozen=True)
class Noun:
    en: str
    en_pl: str
    fr: str          # with its definite article: "la porte", "l'oiseau"
    fr_pl: str
    fr_fem: bool
    de: str
    de_pl: str
    de_gender: str   # "m", "f", "n"

    # German with its definite article, nominative ("der Hund") and accusative ("den Hund")
    de_nom = property(lambda self: f"{_DE_NOM[self.de_gender]} {self.de}")
    de_acc = property(lambda self: f"{_DE_ACC[self.de_gender]} {self.de}")


class _Phrase(NamedTuple):
    """One entry of a phrase table (en, fr, de), named for the templates' patterns ("{room.fr}")."""

    en: str
    fr: str
    de: str


NOUNS = [Noun(*row) for row in [
    ("car", "cars", "la voiture", "voitures", True, "Auto", "Autos", "n"),
    ("book", "books", "le livre", "livres", False, "Buch", "Bücher", "n"),
    ("apple", "apples", "la pomme", "pommes", True, "Apfel", "Äpfel", "m"),
    ("door", "doors", "la porte", "portes", True, "Tür", "Türen", "f"),
    ("window", "windows", "la fenêtre", "fenêtres", True, "Fenster", "Fenster", "n"),
    ("table", "tables", "la table", "tables", True, "Tisch", "Tische", "m"),
    ("chair", "chairs", "la chaise", "chaises", True, "Stuhl", "Stühle", "m"),
    ("cat", "cats", "le chat", "chats", False, "Katze", "Katzen", "f"),
    ("dog", "dogs", "le chien", "chiens", False, "Hund", "Hunde", "m"),
    ("bird", "birds", "l'oiseau", "oiseaux", False, "Vogel", "Vögel", "m"),
    ("house", "houses", "la maison", "maisons", True, "Haus", "Häuser", "n"),
    ("key", "keys", "la clé", "clés", True, "Schlüssel", "Schlüssel", "m"),
    ("phone", "phones", "le téléphone", "téléphones", False, "Telefon", "Telefone", "n"),
    ("computer", "computers", "l'ordinateur", "ordinateurs", False, "Computer", "Computer", "m"),
    ("cup", "cups", "la tasse", "tasses", True, "Tasse", "Tassen", "f"),
    ("bottle", "bottles", "la bouteille", "bouteilles", True, "Flasche", "Flaschen", "f"),
    ("letter", "letters", "la lettre", "lettres", True, "Brief", "Briefe", "m"),
    ("box", "boxes", "la boîte", "boîtes", True, "Kiste", "Kisten", "f"),
    ("lamp", "lamps", "la lampe", "lampes", True, "Lampe", "Lampen", "f"),
    ("bag", "bags", "le sac", "sacs", False, "Tasche", "Taschen", "f"),
    ("ball", "balls", "le ballon", "ballons", False, "Ball", "Bälle", "m"),
    ("flower", "flowers", "la fleur", "fleurs", True, "Blume", "Blumen", "f"),
    ("train", "trains", "le train", "trains", False, "Zug", "Züge", "m"),
    ("bike", "bikes", "le vélo", "vélos", False, "Fahrrad", "Fahrräder", "n"),
    ("ticket", "tickets", "le billet", "billets", False, "Fahrkarte", "Fahrkarten", "f"),
    ("coat", "coats", "le manteau", "manteaux", False, "Mantel", "Mäntel", "m"),
    ("shirt", "shirts", "la chemise", "chemises", True, "Hemd", "Hemden", "n"),
    ("picture", "pictures", "le tableau", "tableaux", False, "Bild", "Bilder", "n"),
    ("clock", "clocks", "l'horloge", "horloges", True, "Uhr", "Uhren", "f"),
    ("pen", "pens", "le stylo", "stylos", False, "Stift", "Stifte", "m"),
    ("cake", "cakes", "le gâteau", "gâteaux", False, "Kuchen", "Kuchen", "m"),
    ("horse", "horses", "le cheval", "chevaux", False, "Pferd", "Pferde", "n"),
    ("boat", "boats", "le bateau", "bateaux", False, "Boot", "Boote", "n"),
    ("plate", "plates", "l'assiette", "assiettes", True, "Teller", "Teller", "m"),
    ("glass", "glasses", "le verre", "verres", False, "Glas", "Gläser", "n"),
    ("umbrella", "umbrellas", "le parapluie", "parapluies", False, "Regenschirm", "Regenschirme", "m"),
    ("hat", "hats", "le chapeau", "chapeaux", False, "Hut", "Hüte", "m"),
    ("shoe", "shoes", "la chaussure", "chaussures", True, "Schuh", "Schuhe", "m"),
    ("newspaper", "newspapers", "le journal", "journaux", False, "Zeitung", "Zeitungen", "f"),
]]
OPENABLE = [n for n in NOUNS if n.en in ("door", "window", "box", "bottle", "bag", "letter")]

# name -> French feminine?
NAMES = {
    "alice": True, "bob": False, "charlie": False, "david": False, "emma": True, "frank": False,
    "grace": True, "henry": False, "julia": True, "kevin": False, "laura": True, "martin": False,
    "nina": True, "oscar": False, "paul": False, "rachel": True, "simon": False, "sophie": True,
    "thomas": False, "victor": False, "anna": True, "peter": False, "maria": True, "daniel": False,
    "olivia": True, "lucas": False, "clara": True, "felix": False, "hanna": True, "leon": False,
    "eva": True, "max": False,
}

# English, French masculine, French feminine, German (predicative)
THING_ADJECTIVES = [
    ("red", "rouge", "rouge", "rot"), ("blue", "bleu", "bleue", "blau"), ("green", "vert", "verte", "grün"),
    ("big", "grand", "grande", "groß"), ("small", "petit", "petite", "klein"),
    ("old", "vieux", "vieille", "alt"), ("new", "nouveau", "nouvelle", "neu"),
    ("black", "noir", "noire", "schwarz"), ("white", "blanc", "blanche", "weiß"),
    ("clean", "propre", "propre", "sauber"), ("heavy", "lourd", "lourde", "schwer"),
    ("cheap", "bon marché", "bon marché", "billig"), ("broken", "cassé", "cassée", "kaputt"),
]
PERSON_ADJECTIVES = [
    ("happy", "heureux", "heureuse", "glücklich"), ("tired", "fatigué", "fatiguée", "müde"),
    ("busy", "occupé", "occupée", "beschäftigt"), ("sad", "triste", "triste", "traurig"),
    ("ready", "prêt", "prête", "bereit"), ("sick", "malade", "malade", "krank"),
    ("calm", "calme", "calme", "ruhig"), ("angry", "fâché", "fâchée", "wütend"),
    ("hungry", "affamé", "affamée", "hungrig"), ("late", "en retard", "en retard", "spät dran"),
]
# English room, French "dans ...", German "in ..." (dative)
ROOMS = [
    ("kitchen", "dans la cuisine", "in der Küche"), ("bedroom", "dans la chambre", "im Schlafzimmer"),
    ("garden", "dans le jardin", "im Garten"), ("office", "dans le bureau", "im Büro"),
    ("bathroom", "dans la salle de bain", "im Badezimmer"), ("living room", "dans le salon", "im Wohnzimmer"),
    ("garage", "dans le garage", "in der Garage"), ("hallway", "dans le couloir", "im Flur"),
]
# English place, French "à ...", German direction
PLACES = [
    ("park", "au parc", "in den Park"), ("station", "à la gare", "zum Bahnhof"),
    ("school", "à l'école", "zur Schule"), ("market", "au marché", "zum Markt"),
    ("library", "à la bibliothèque", "in die Bibliothek"), ("beach", "à la plage", "zum Strand"),
    ("bank", "à la banque", "zur Bank"), ("museum", "au musée", "ins Museum"),
    ("airport", "à l'aéroport", "zum Flughafen"), ("hospital", "à l'hôpital", "ins Krankenhaus"),
    ("cinema", "au cinéma", "ins Kino"), ("bakery", "à la boulangerie", "zur Bäckerei"),
]
DAYS = [
    ("monday", "lundi", "Montag"), ("tuesday", "mardi", "Dienstag"), ("wednesday", "mercredi", "Mittwoch"),
    ("thursday", "jeudi", "Donnerstag"), ("friday", "vendredi", "Freitag"), ("saturday", "samedi", "Samstag"),
    ("sunday", "dimanche", "Sonntag"),
]
# English device, French object, German accusative object
DEVICES = [
    ("light", "la lumière", "das Licht"), ("radio", "la radio", "das Radio"),
    ("television", "la télévision", "den Fernseher"), ("heating", "le chauffage", "die Heizung"),
    ("fan", "le ventilateur", "den Ventilator"), ("oven", "le four", "den Ofen"),
    ("music", "la musique", "die Musik"), ("computer", "l'ordinateur", "den Computer"),
]

# English weather word, French "... aujourd'hui", German "es ist heute ..."
WEATHER = [
    ("cold", "il fait froid", "kalt"), ("warm", "il fait chaud", "warm"), ("windy", "il y a du vent", "windig"),
    ("sunny", "il y a du soleil", "sonnig"), ("foggy", "il y a du brouillard", "neblig"),
    ("cloudy", "le ciel est couvert", "bewölkt"),
]
# English drink, French "de ..." (elided before a vowel), German
DRINKS = [
    ("tea", "de thé", "Tee"), ("coffee", "de café", "Kaffee"), ("milk", "de lait", "Milch"),
    ("water", "d'eau", "Wasser"), ("juice", "de jus", "Saft"), ("soup", "de soupe", "Suppe"),
]
CONTAINERS = [("cup", "une tasse", "eine Tasse"), ("glass", "un verre", "ein Glas"),
              ("bowl", "un bol", "eine Schüssel")]
# English, French, German time of day (weather sentences)
TIMES = [("today", "aujourd'hui", "heute"), ("this morning", "ce matin", "heute Morgen")]

_DE_NOM = {"m": "der", "f": "die", "n": "das"}
_DE_ACC = {"m": "den", "f": "die", "n": "das"}


def number_words(n: int, lang: str) -> str:
    """A number spelled out: ``en`` as spoken words ("forty two"), ``fr``/``de`` in their written form."""
    words = num2words(n, lang=lang)
    if lang == "en":
        words = re.sub(r"[-,]", " ", words)
        words = " ".join(words.split())
    return words


def _fr_count_ok(n: int, feminine: bool) -> bool:
    """num2words writes masculine French numbers; skip counts that would need "une" (21, 31, ...)."""
    return not (feminine and n % 10 == 1 and n % 100 != 11)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _name(rng: random.Random) -> tuple[str, bool]:
    name = rng.choice(sorted(NAMES))
    return name, NAMES[name]


@dataclass(frozen=True)
class _Person:
    en: str     # lower case, as in the English sentence
    fem: bool   # French feminine

    @property
    def title(self) -> str:
        """The name as French and German write it."""
        return self.en.title()


def _person(rng: random.Random, drawn: dict) -> _Person:
    return _Person(*_name(rng))


def _other_person(rng: random.Random, drawn: dict) -> _Person:
    """A person other than ``drawn["a"]``."""
    b = _person(rng, drawn)
    while b.en == drawn["a"].en:
        b = _person(rng, drawn)
    return b


def _choice(table: list):
    """Drawer of one entry of ``table`` (an (en, fr, de) tuple becomes a :class:`_Phrase`)."""
    def draw(rng: random.Random, drawn: dict):
        entry = rng.choice(table)
        return _Phrase(*entry) if isinstance(entry, tuple) else entry
    return draw


# Each template returns (english lower case, french, german).

def _t_number(rng):
    n = rng.randint(0, 999)
    return (f"the number is {number_words(n, 'en')}", f"le nombre est {number_words(n, 'fr')}",
            f"die Zahl ist {number_words(n, 'de')}")


def _t_has_count(rng):
    name, _ = _name(rng)
    noun = rng.choice(NOUNS)
    n = rng.randint(2, 99)
    while not _fr_count_ok(n, noun.fr_fem):
        n = rng.randint(2, 99)
    return (f"{name} has {number_words(n, 'en')} {noun.en_pl}",
            f"{name.title()} a {number_words(n, 'fr')} {noun.fr_pl}",
            f"{name.title()} hat {number_words(n, 'de')} {noun.de_pl}")


def _t_timer(rng):
    n = rng.randint(2, 60)
    while not _fr_count_ok(n, True):
        n = rng.randint(2, 60)
    return (f"set a timer for {number_words(n, 'en')} minutes",
            f"règle une minuterie de {number_words(n, 'fr')} minutes",
            f"stelle einen Timer auf {number_words(n, 'de')} Minuten")


def _t_wake(rng):
    h = rng.randint(2, 12)
    return (f"wake me up at {number_words(h, 'en')} o'clock", f"réveille-moi à {number_words(h, 'fr')} heures",
            f"weck mich um {number_words(h, 'de')} Uhr")


def _t_costs(rng):
    noun = rng.choice(NOUNS)
    n = rng.randint(2, 999)
    return (f"the {noun.en} costs {number_words(n, 'en')} euros",
            f"{noun.fr} coûte {number_words(n, 'fr')} euros",
            f"{noun.de_nom} kostet {number_words(n, 'de')} Euro")


def _t_switch(rng):
    dev_en, dev_fr, dev_de = rng.choice(DEVICES)
    on = rng.random() < 0.5
    en, fr, de = f"turn {'on' if on else 'off'} the {dev_en}", f"{'allume' if on else 'éteins'} {dev_fr}", \
        f"schalte {dev_de}"
    if rng.random() < 0.5:
        room_en, room_fr, room_de = rng.choice(ROOMS)
        en, fr, de = f"{en} in the {room_en}", f"{fr} {room_fr}", f"{de} {room_de}"
    return en, fr, f"{de} {'ein' if on else 'aus'}"


def _t_open(rng):
    noun = rng.choice(OPENABLE)
    acc = noun.de_acc
    if rng.random() < 0.5:
        return f"open the {noun.en}", f"ouvre {noun.fr}", f"öffne {acc}"
    return f"close the {noun.en}", f"ferme {noun.fr}", f"schließe {acc}"


def _t_call(rng):
    name, _ = _name(rng)
    if rng.random() < 0.5:
        return f"call {name}", f"appelle {name.title()}", f"ruf {name.title()} an"
    day_en, day_fr, day_de = rng.choice(DAYS)
    return (f"call {name} on {day_en}", f"appelle {name.title()} {day_fr}",
            f"ruf {name.title()} am {day_de} an")


def _t_person_is(rng):
    name, fem = _name(rng)
    en, fr_m, fr_f, de = rng.choice(PERSON_ADJECTIVES)
    return f"{name} is {en}", f"{name.title()} est {fr_f if fem else fr_m}", f"{name.title()} ist {de}"


def _t_thing_is(rng):
    noun = rng.choice(NOUNS)
    en, fr_m, fr_f, de = rng.choice(THING_ADJECTIVES)
    return (f"the {noun.en} is {en}", f"{noun.fr} est {fr_f if noun.fr_fem else fr_m}",
            f"{noun.de_nom} ist {de}")


# Templates that only fill slots: the slots drawn in this order (a drawer takes the rng and the slots drawn so
# far), then the English, French and German ``str.format`` patterns over them.
_SLOT_TEMPLATES = {
    "bring": ({"noun": _choice(NOUNS)},
              "bring me the {noun.en}", "apporte-moi {noun.fr}", "bring mir {noun.de_acc}"),
    "likes": ({"a": _person, "noun": _choice(NOUNS)},
              "{a.en} likes the {noun.en}", "{a.title} aime {noun.fr}", "{a.title} mag {noun.de_acc}"),
    "thing_in": ({"noun": _choice(NOUNS), "room": _choice(ROOMS)},
                 "the {noun.en} is in the {room.en}", "{noun.fr} est {room.fr}", "{noun.de_nom} ist {room.de}"),
    "where": ({"noun": _choice(NOUNS)},
              "where is the {noun.en}", "où est {noun.fr}", "wo ist {noun.de_nom}"),
    "goes": ({"a": _person, "place": _choice(PLACES), "day": _choice(DAYS)},
             "{a.en} goes to the {place.en} on {day.en}", "{a.title} va {place.fr} {day.fr}",
             "{a.title} geht am {day.de} {place.de}"),
    "two_in": ({"a": _person, "b": _other_person, "room": _choice(ROOMS)},
               "{a.en} and {b.en} are in the {room.en}", "{a.title} et {b.title} sont {room.fr}",
               "{a.title} und {b.title} sind {room.de}"),
    "gives": ({"a": _person, "b": _other_person, "noun": _choice(NOUNS)},
              "{a.en} gives the {noun.en} to {b.en}", "{a.title} donne {noun.fr} à {b.title}",
              "{a.title} gibt {b.title} {noun.de_acc}"),
    "weather": ({"weather": _choice(WEATHER), "when": _choice(TIMES)},
                "it is {weather.en} {when.en}", "{weather.fr} {when.fr}", "es ist {when.de} {weather.de}"),
    "wants": ({"a": _person, "container": _choice(CONTAINERS), "drink": _choice(DRINKS)},
              "{a.en} wants a {container.en} of {drink.en}", "{a.title} veut {container.fr} {drink.fr}",
              "{a.title} möchte {container.de} {drink.de}"),
}


def _slot_template(slots: dict, *patterns: str):
    def template(rng):
        drawn: dict = {}
        for key, draw in slots.items():
            drawn[key] = draw(rng, drawn)
        return tuple(pattern.format(**drawn) for pattern in patterns)
    return template


TEMPLATES = {
    "number": _t_number, "has_count": _t_has_count, "timer": _t_timer, "wake": _t_wake, "costs": _t_costs,
    "switch": _t_switch, "open": _t_open, "call": _t_call, "person_is": _t_person_is, "thing_is": _t_thing_is,
    **{kind: _slot_template(*spec) for kind, spec in _SLOT_TEMPLATES.items()},
}


def random_sentence(rng: random.Random) -> Sentence:
    """One sentence from a uniformly chosen template."""
    kind = rng.choice(sorted(TEMPLATES))
    en, fr, de = TEMPLATES[kind](rng)
    return Sentence(text=en.upper(), translation={"fr": _cap(fr), "de": _cap(de)}, kind=kind)


def generate_sentences(num: int, seed: int) -> list[Sentence]:
    """``num`` distinct sentences (by English text) from a generator seeded with ``seed``.

    Raises:
        UserError: the grammar cannot produce that many distinct sentences.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Sentence] = []
    attempts = 0
    while len(out) < num:
        attempts += 1
        if attempts > 50 * num + 1000:
            raise UserError(f"the sentence generator found only {len(out)} distinct sentences, {num} wanted")
        s = random_sentence(rng)
        if s.text not in seen:
            seen.add(s.text)
            out.append(s)
    return out


def vocabulary() -> list[str]:
    """Every English word (upper case) the generator can produce, sorted."""
    words: set[str] = set()
    for n in range(0, 1000):
        words.update(number_words(n, "en").upper().split())
    rng = random.Random(0)
    for _ in range(5000):
        words.update(random_sentence(rng).words)
    tables = [[n.en for n in NOUNS], [n.en_pl for n in NOUNS], list(NAMES), [a[0] for a in THING_ADJECTIVES],
              [a[0] for a in PERSON_ADJECTIVES], [r[0] for r in ROOMS], [p[0] for p in PLACES],
              [d[0] for d in DAYS], [d[0] for d in DEVICES]]
    for table in tables:
        for entry in table:
            words.update(entry.upper().split())
    return sorted(words)
