"""Sentence templates and word lists of the generated quickstart corpus.

Every relation has one question template and one passage template per language. Slots:
``{name}`` (a person), ``{town}``, ``{river}``, ``{co}`` (a company), ``{lake}``, ``{country}``
(all invented names, transliterated per script), ``{year}``, ``{num}`` (digits), ``{prof}``
and ``{product}`` (indices into the word lists below). Persons are written in the masculine
so that one template per language suffices; invented names stay in the nominative, placed in
apposition ("город {town}", "η πόλη {town}") where the language would otherwise inflect them.
"""

from __future__ import annotations

# relation → entity kind it describes
RELATIONS: dict[str, str] = {
    "born_year": "person",
    "birthplace": "person",
    "profession": "person",
    "country": "town",
    "population": "town",
    "founded": "town",
    "length": "river",
    "lake": "river",
    "co_founded": "company",
    "product": "company",
}

# lang → relation → (question, passage)
TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "born_year": ("In what year was {name} born?", "{name} was born in {year}."),
        "birthplace": ("Where was {name} born?",
                       "{name} grew up in the town of {town}, where he was born."),
        "profession": ("What was the occupation of {name}?",
                       "{name} worked as {prof} for most of his life."),
        "country": ("In which country is {town} located?", "{town} is a town in {country}."),
        "population": ("How many people live in {town}?",
                       "{town} has a population of {num} inhabitants."),
        "founded": ("When was the town of {town} founded?",
                    "The town of {town} was founded in {year}."),
        "length": ("How long is the river {river}?",
                   "The river {river} is {num} kilometres long."),
        "lake": ("Into which lake does the river {river} flow?",
                 "The river {river} flows into Lake {lake}."),
        "co_founded": ("In what year was the company {co} established?",
                       "The company {co} was established in {year}."),
        "product": ("What does the company {co} make?", "The company {co} manufactures {product}."),
    },
    "de": {
        "born_year": ("In welchem Jahr wurde {name} geboren?", "{name} wurde im Jahr {year} geboren."),
        "birthplace": ("Wo wurde {name} geboren?",
                       "{name} stammt aus der Stadt {town}, wo er geboren wurde."),
        "profession": ("Welchen Beruf hatte {name}?",
                       "{name} arbeitete die meiste Zeit seines Lebens als {prof}."),
        "country": ("In welchem Land liegt {town}?", "{town} ist eine Stadt in {country}."),
        "population": ("Wie viele Menschen leben in {town}?", "{town} hat {num} Einwohner."),
        "founded": ("Wann wurde die Stadt {town} gegründet?",
                    "Die Stadt {town} wurde im Jahr {year} gegründet."),
        "length": ("Wie lang ist der Fluss {river}?", "Der Fluss {river} ist {num} Kilometer lang."),
        "lake": ("In welchen See mündet der Fluss {river}?",
                 "Der Fluss {river} mündet in den See {lake}."),
        "co_founded": ("In welchem Jahr wurde die Firma {co} gegründet?",
                       "Die Firma {co} wurde {year} gegründet."),
        "product": ("Was stellt die Firma {co} her?", "Die Firma {co} produziert {product}."),
    },
    "es": {
        "born_year": ("¿En qué año nació {name}?", "{name} nació en el año {year}."),
        "birthplace": ("¿Dónde nació {name}?",
                       "{name} es originario de la ciudad de {town}, donde nació."),
        "profession": ("¿Cuál era la profesión de {name}?",
                       "{name} trabajó como {prof} durante la mayor parte de su vida."),
        "country": ("¿En qué país se encuentra {town}?", "{town} es una ciudad de {country}."),
        "population": ("¿Cuántas personas viven en {town}?",
                       "{town} tiene una población de {num} habitantes."),
        "founded": ("¿Cuándo fue fundada la ciudad de {town}?",
                    "La ciudad de {town} fue fundada en {year}."),
        "length": ("¿Qué longitud tiene el río {river}?",
                   "El río {river} mide {num} kilómetros de largo."),
        "lake": ("¿En qué lago desemboca el río {river}?",
                 "El río {river} desemboca en el lago {lake}."),
        "co_founded": ("¿En qué año se fundó la empresa {co}?", "La empresa {co} se fundó en {year}."),
        "product": ("¿Qué fabrica la empresa {co}?", "La empresa {co} fabrica {product}."),
    },
    "fr": {
        "born_year": ("En quelle année {name} est-il né ?", "{name} est né en {year}."),
        "birthplace": ("Où {name} est-il né ?",
                       "{name} est originaire de la ville de {town}, où il est né."),
        "profession": ("Quel était le métier de {name} ?",
                       "{name} a travaillé comme {prof} pendant la plus grande partie de sa vie."),
        "country": ("Dans quel pays se trouve {town} ?", "{town} est une ville située en {country}."),
        "population": ("Combien de personnes vivent à {town} ?", "{town} compte {num} habitants."),
        "founded": ("Quand la ville de {town} a-t-elle été fondée ?",
                    "La ville de {town} a été fondée en {year}."),
        "length": ("Quelle est la longueur de la rivière {river} ?",
                   "La rivière {river} mesure {num} kilomètres de long."),
        "lake": ("Dans quel lac se jette la rivière {river} ?",
                 "La rivière {river} se jette dans le lac {lake}."),
        "co_founded": ("En quelle année l'entreprise {co} a-t-elle été créée ?",
                       "L'entreprise {co} a été créée en {year}."),
        "product": ("Que fabrique l'entreprise {co} ?", "L'entreprise {co} fabrique {product}."),
    },
    "pt": {
        "born_year": ("Em que ano nasceu {name}?", "{name} nasceu no ano de {year}."),
        "birthplace": ("Onde nasceu {name}?", "{name} é natural da cidade de {town}, onde nasceu."),
        "profession": ("Qual era a profissão de {name}?",
                       "{name} trabalhou como {prof} durante a maior parte da vida."),
        "country": ("Em que país fica {town}?", "{town} é uma cidade da {country}."),
        "population": ("Quantas pessoas vivem em {town}?",
                       "{town} tem uma população de {num} habitantes."),
        "founded": ("Quando foi fundada a cidade de {town}?",
                    "A cidade de {town} foi fundada em {year}."),
        "length": ("Qual é o comprimento do rio {river}?",
                   "O rio {river} tem {num} quilómetros de extensão."),
        "lake": ("Em que lago desagua o rio {river}?", "O rio {river} desagua no lago {lake}."),
        "co_founded": ("Em que ano foi fundada a empresa {co}?",
                       "A empresa {co} foi fundada em {year}."),
        "product": ("O que fabrica a empresa {co}?", "A empresa {co} fabrica {product}."),
    },
    "ru": {
        "born_year": ("В каком году родился {name}?", "{name} родился в {year} году."),
        "birthplace": ("Где родился {name}?", "{name} родом из города {town}, где он и родился."),
        "profession": ("Кем работал {name}?",
                       "По профессии {name} — {prof}; этим он занимался почти всю жизнь."),
        "country": ("В какой стране находится город {town}?",
                    "Город {town} находится в стране {country}."),
        "population": ("Сколько человек живёт в городе {town}?",
                       "Население города {town} составляет {num} человек."),
        "founded": ("Когда был основан город {town}?", "Город {town} был основан в {year} году."),
        "length": ("Какова длина реки {river}?", "Длина реки {river} составляет {num} километров."),
        "lake": ("В какое озеро впадает река {river}?", "Река {river} впадает в озеро {lake}."),
        "co_founded": ("В каком году была основана компания {co}?",
                       "Компания {co} была основана в {year} году."),
        "product": ("Что производит компания {co}?", "Компания {co} производит {product}."),
    },
    "uk": {
        "born_year": ("У якому році народився {name}?", "{name} народився у {year} році."),
        "birthplace": ("Де народився {name}?", "{name} родом із міста {town}, де він і народився."),
        "profession": ("Ким працював {name}?",
                       "За професією {name} — {prof}; цим він займався майже все життя."),
        "country": ("У якій країні розташоване місто {town}?",
                    "Місто {town} розташоване в країні {country}."),
        "population": ("Скільки людей живе в місті {town}?",
                       "Населення міста {town} становить {num} осіб."),
        "founded": ("Коли було засновано місто {town}?", "Місто {town} було засновано у {year} році."),
        "length": ("Яка довжина річки {river}?", "Довжина річки {river} становить {num} кілометрів."),
        "lake": ("У яке озеро впадає річка {river}?", "Річка {river} впадає в озеро {lake}."),
        "co_founded": ("У якому році була заснована компанія {co}?",
                       "Компанію {co} було засновано у {year} році."),
        "product": ("Що виробляє компанія {co}?", "Компанія {co} виробляє {product}."),
    },
    "el": {
        "born_year": ("Σε ποιο έτος γεννήθηκε ο {name};", "Ο {name} γεννήθηκε το {year}."),
        "birthplace": ("Πού γεννήθηκε ο {name};",
                       "Ο {name} κατάγεται από την πόλη {town}, όπου και γεννήθηκε."),
        "profession": ("Ποιο ήταν το επάγγελμα του {name};",
                       "Ο {name} εργάστηκε ως {prof} για το μεγαλύτερο μέρος της ζωής του."),
        "country": ("Σε ποια χώρα βρίσκεται η πόλη {town};",
                    "Η πόλη {town} βρίσκεται στη χώρα {country}."),
        "population": ("Πόσοι άνθρωποι ζουν στην πόλη {town};",
                       "Η πόλη {town} έχει πληθυσμό {num} κατοίκων."),
        "founded": ("Πότε ιδρύθηκε η πόλη {town};", "Η πόλη {town} ιδρύθηκε το {year}."),
        "length": ("Πόσο μήκος έχει ο ποταμός {river};",
                   "Ο ποταμός {river} έχει μήκος {num} χιλιομέτρων."),
        "lake": ("Σε ποια λίμνη εκβάλλει ο ποταμός {river};",
                 "Ο ποταμός {river} εκβάλλει στη λίμνη {lake}."),
        "co_founded": ("Σε ποιο έτος ιδρύθηκε η εταιρεία {co};", "Η εταιρεία {co} ιδρύθηκε το {year}."),
        "product": ("Τι παράγει η εταιρεία {co};", "Η εταιρεία {co} παράγει {product}."),
    },
}

# Professions, masculine, in the form each passage template needs.
PROFESSIONS: dict[str, tuple[str, ...]] = {
    "en": ("a baker", "a teacher", "a painter", "an engineer", "a doctor", "a sailor",
           "an architect", "a musician", "a carpenter", "a writer"),
    "de": ("Bäcker", "Lehrer", "Maler", "Ingenieur", "Arzt", "Seemann", "Architekt", "Musiker",
           "Tischler", "Schriftsteller"),
    "es": ("panadero", "maestro", "pintor", "ingeniero", "médico", "marinero", "arquitecto",
           "músico", "carpintero", "escritor"),
    "fr": ("boulanger", "instituteur", "peintre", "ingénieur", "médecin", "marin", "architecte",
           "musicien", "menuisier", "écrivain"),
    "pt": ("padeiro", "professor", "pintor", "engenheiro", "médico", "marinheiro", "arquiteto",
           "músico", "carpinteiro", "escritor"),
    "ru": ("пекарь", "учитель", "художник", "инженер", "врач", "моряк", "архитектор", "музыкант",
           "плотник", "писатель"),
    "uk": ("пекар", "вчитель", "художник", "інженер", "лікар", "моряк", "архітектор", "музикант",
           "тесля", "письменник"),
    "el": ("αρτοποιός", "δάσκαλος", "ζωγράφος", "μηχανικός", "γιατρός", "ναύτης", "αρχιτέκτονας",
           "μουσικός", "ξυλουργός", "συγγραφέας"),
}

# Products, as the object of "makes".
PRODUCTS: dict[str, tuple[str, ...]] = {
    "en": ("furniture", "bicycles", "tea", "glass", "paper", "shoes", "clocks", "ceramics"),
    "de": ("Möbel", "Fahrräder", "Tee", "Glas", "Papier", "Schuhe", "Uhren", "Keramik"),
    "es": ("muebles", "bicicletas", "té", "vidrio", "papel", "zapatos", "relojes", "cerámica"),
    "fr": ("des meubles", "des vélos", "du thé", "du verre", "du papier", "des chaussures",
           "des horloges", "de la céramique"),
    "pt": ("móveis", "bicicletas", "chá", "vidro", "papel", "sapatos", "relógios", "cerâmica"),
    "ru": ("мебель", "велосипеды", "чай", "стекло", "бумагу", "обувь", "часы", "керамику"),
    "uk": ("меблі", "велосипеди", "чай", "скло", "папір", "взуття", "годинники", "кераміку"),
    "el": ("έπιπλα", "ποδήλατα", "τσάι", "γυαλί", "χαρτί", "παπούτσια", "ρολόγια", "κεραμικά"),
}

# Invented names are built from these Latin letters only, then transliterated per script.
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"

_CYRILLIC_RU = {
    "a": "а", "e": "е", "i": "и", "o": "о", "u": "у", "b": "б", "d": "д", "f": "ф", "g": "г",
    "k": "к", "l": "л", "m": "м", "n": "н", "p": "п", "r": "р", "s": "с", "t": "т", "v": "в",
    "z": "з",
}
_CYRILLIC_UK = {**_CYRILLIC_RU, "i": "і", "e": "е", "g": "ґ"}
_GREEK = {
    "a": "α", "e": "ε", "i": "ι", "o": "ο", "u": "ου", "b": "μπ", "d": "ντ", "f": "φ", "g": "γκ",
    "k": "κ", "l": "λ", "m": "μ", "n": "ν", "p": "π", "r": "ρ", "s": "σ", "t": "τ", "v": "β",
    "z": "ζ",
}

TRANSLITERATION: dict[str, dict[str, str]] = {"ru": _CYRILLIC_RU, "uk": _CYRILLIC_UK, "el": _GREEK}
