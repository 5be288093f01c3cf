"""Word lists for the embedded sample dataset (`recpipe.data.sample`).

The generator's latent structure is a grid of *themes* x *facets*: a theme (e.g. fantasy) is
a taste that shows up in every domain (fantasy novels, role-playing games, dragon figurines),
and each theme has three facets (dragons & magic / knights & castles / quests & legends) with
their own words. Users like a few themes and, within them, some facets; items belong to one
(domain, theme, facet) cell. Every text field draws its words from the item's cell, so
a text model can recover the taste structure, while brands, sub-categories and nouns make the
records look like real Amazon listings. Facet words never repeat across themes: the signal
test in tests/test_sample.py relies on words being informative.

Kept separate from the generator so the logic file stays short; nothing here is random.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DomainTheme:
    """How one theme looks inside one domain."""

    path: tuple[str, ...]  # category path after the main category (before the leaf)
    leaves: tuple[str, str, str]  # one sub-category per facet
    nouns: tuple[str, ...]  # what an item of this theme is called ("saga", "skillet")


@dataclass(frozen=True)
class Theme:
    name: str
    facets: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # 4 words each
    brands: tuple[str, str, str]  # brand stems; the domain adds " Press", " Studios", ...
    domains: dict  # domain name -> DomainTheme


@dataclass(frozen=True)
class Domain:
    """Domain-wide look: the strings real Amazon 2018 files use for this category."""

    name: str  # file stem: <name>_5.json.gz, meta_<name>.json.gz
    root: str  # category[0] in meta lines
    main_cat: str  # meta `main_cat` (Home_and_Kitchen really says "Amazon Home")
    generic: tuple[str, ...]  # words every review in the domain may use
    verb: str  # "I usually <verb> things about ..."
    brand_suffixes: tuple[str, ...]
    style_key: str  # review `style` dict key, e.g. "Format:"
    style_values: tuple[str, ...]
    price_median: float  # dollars; prices are log-normal around this


def _dt(path, leaves, nouns) -> DomainTheme:
    return DomainTheme(tuple(path), tuple(leaves), tuple(nouns))


_VG = ("Video Games",)  # video game paths are ["Video Games", <platform>, "Games", <leaf>]

THEMES: tuple[Theme, ...] = (
    Theme(
        "fantasy",
        (("dragon", "wizard", "magic", "spell"), ("knight", "sword", "castle", "kingdom"),
         ("quest", "elf", "legend", "prophecy")),
        ("Emberforge", "Runeleaf", "Silverquill"),
        {
            "Books": _dt(["Science Fiction & Fantasy", "Fantasy"],
                         ["Dragons & Mythical Creatures", "Sword & Sorcery", "Epic"],
                         ["novel", "saga", "trilogy"]),
            "Video_Games": _dt(_VG, ["Role-Playing", "Action", "Adventure"],
                               ["RPG", "action adventure", "open world game"]),
            "Home_and_Kitchen": _dt(["Home Decor", "Sculptures & Statues"],
                                    ["Figurines", "Wall Sculptures", "Tapestries"],
                                    ["figurine", "candle holder", "statue"]),
        },
    ),
    Theme(
        "space",
        (("galaxy", "nebula", "comet", "asteroid"), ("rocket", "astronaut", "orbit", "planet"),
         ("alien", "robot", "starship", "cosmic")),
        ("Novaline", "Starward", "Orbitek"),
        {
            "Books": _dt(["Science Fiction & Fantasy", "Science Fiction"],
                         ["Galactic Empire", "Hard Science Fiction", "First Contact"],
                         ["novel", "space opera", "anthology"]),
            "Video_Games": _dt(_VG, ["Space Simulation", "Flight", "Shooter"],
                               ["space sim", "shooter", "exploration game"]),
            "Home_and_Kitchen": _dt(["Home Decor", "Lighting"],
                                    ["Star Projectors", "Night Lights", "Wall Decals"],
                                    ["night light", "projector lamp", "wall decal"]),
        },
    ),
    Theme(
        "mystery",
        (("detective", "clue", "crime", "suspect"), ("ghost", "haunted", "midnight", "shadow"),
         ("zombie", "creepy", "monster", "scream")),
        ("Ravenhollow", "Blackmoor", "Nightshade"),
        {
            "Books": _dt(["Mystery, Thriller & Suspense"],
                         ["Crime Fiction", "Ghosts", "Horror"],
                         ["thriller", "mystery", "page-turner"]),
            "Video_Games": _dt(_VG, ["Point & Click", "Psychological Horror", "Survival Horror"],
                               ["horror game", "mystery adventure", "survival game"]),
            "Home_and_Kitchen": _dt(["Seasonal Decor", "Halloween"],
                                    ["Gothic Decor", "Halloween Lanterns", "Halloween Props"],
                                    ["skull decoration", "lantern", "door banner"]),
        },
    ),
    Theme(
        "cooking",
        (("chef", "grill", "roast", "spice"), ("pasta", "garlic", "sauce", "basil"),
         ("bake", "bread", "dough", "oven")),
        ("Copperpot", "Saltbrook", "Hearthstone"),
        {
            "Books": _dt(["Cookbooks, Food & Wine"],
                         ["Grilling & Barbecue", "Italian", "Baking"],
                         ["cookbook", "recipe collection", "kitchen guide"]),
            "Video_Games": _dt(_VG, ["Cooking Simulation", "Restaurant Management", "Party"],
                               ["cooking game", "restaurant sim", "party game"]),
            "Home_and_Kitchen": _dt(["Kitchen & Dining", "Cookware"],
                                    ["Grill Pans", "Pasta Makers", "Bakeware"],
                                    ["skillet", "dutch oven", "baking pan"]),
        },
    ),
    Theme(
        "sports",
        (("soccer", "league", "stadium", "goal"), ("basketball", "dunk", "court", "champion"),
         ("workout", "muscle", "protein", "marathon")),
        ("Ironstride", "Peakform", "Fastbreak"),
        {
            "Books": _dt(["Sports & Outdoors"],
                         ["Soccer", "Basketball", "Exercise & Fitness"],
                         ["biography", "playbook", "training guide"]),
            "Video_Games": _dt(_VG, ["Soccer", "Basketball", "Fitness"],
                               ["sports game", "fitness game", "season simulator"]),
            "Home_and_Kitchen": _dt(["Kitchen & Dining", "Travel & To-Go Drinkware"],
                                    ["Stadium Cups", "Sports Tumblers", "Shaker Bottles"],
                                    ["water bottle", "tumbler", "shaker bottle"]),
        },
    ),
    Theme(
        "kids",
        (("toddler", "alphabet", "crayon", "preschool"), ("bedtime", "teddy", "lullaby", "dream"),
         ("cartoon", "giggle", "rainbow", "playful")),
        ("Little Sprout", "Bumblebee", "Tiny Tales"),
        {
            "Books": _dt(["Children's Books"],
                         ["Early Learning", "Bedtime & Dreaming", "Humor"],
                         ["picture book", "board book", "story book"]),
            "Video_Games": _dt(_VG, ["Educational", "Kids & Family", "Platformer"],
                               ["family game", "learning game", "platformer"]),
            "Home_and_Kitchen": _dt(["Kids' Home Store"],
                                    ["Kids' Dinnerware", "Nursery Lamps", "Kids' Bedding"],
                                    ["plate set", "nursery lamp", "bedding set"]),
        },
    ),
    Theme(
        "garden",
        (("seed", "soil", "harvest", "tomato"), ("flower", "bloom", "butterfly", "meadow"),
         ("farm", "orchard", "tractor", "barn")),
        ("Greenleaf", "Wildroot", "Meadowbrook"),
        {
            "Books": _dt(["Crafts, Hobbies & Home", "Gardening & Landscape Design"],
                         ["Vegetables", "Flowers", "Small Farms"],
                         ["gardening guide", "handbook", "field guide"]),
            "Video_Games": _dt(_VG, ["Gardening", "Casual", "Farming Simulation"],
                               ["farming sim", "life sim", "casual game"]),
            "Home_and_Kitchen": _dt(["Home Decor", "Artificial Plants & Flowers"],
                                    ["Herb Garden Kits", "Artificial Flowers", "Farmhouse Decor"],
                                    ["planter", "vase", "seed kit"]),
        },
    ),
    Theme(
        "history",
        (("empire", "emperor", "ancient", "legion"), ("battle", "soldier", "general", "war"),
         ("vintage", "antique", "rustic", "century")),
        ("Oldmill", "Ironclad", "Legionary"),
        {
            "Books": _dt(["History"],
                         ["Ancient Civilizations", "Military", "Antiques & Collectibles"],
                         ["history", "chronicle", "biography"]),
            "Video_Games": _dt(_VG, ["Grand Strategy", "Shooter", "Historical Simulation"],
                               ["strategy game", "war shooter", "campaign game"]),
            "Home_and_Kitchen": _dt(["Home Decor", "Clocks"],
                                    ["Classical Sculptures", "Military Wall Art", "Vintage Clocks"],
                                    ["wall clock", "metal sign", "wooden crate"]),
        },
    ),
    Theme(
        "romance",
        (("love", "kiss", "sweetheart", "wedding"), ("cozy", "cottage", "snuggle", "lavender"),
         ("duke", "ballroom", "regency", "courtship")),
        ("Rosewood", "Velvetine", "Amberly"),
        {
            "Books": _dt(["Romance"],
                         ["Contemporary", "Small Town", "Regency"],
                         ["romance", "love story", "novel"]),
            "Video_Games": _dt(_VG, ["Dating Simulation", "Life Simulation", "Visual Novel"],
                               ["dating sim", "story game", "visual novel"]),
            "Home_and_Kitchen": _dt(["Bedding"],
                                    ["Wedding Decor", "Throw Blankets", "Candelabras"],
                                    ["throw blanket", "scented candle", "pillow cover"]),
        },
    ),
    Theme(
        "puzzles",
        (("puzzle", "riddle", "logic", "brain"), ("tidy", "declutter", "organize", "label"),
         ("habit", "minimalist", "focus", "calm")),
        ("Neatnest", "Cubix", "Brainbox"),
        {
            "Books": _dt(["Self-Help"],
                         ["Puzzles & Games", "Home Organization", "Mindfulness"],
                         ["puzzle book", "workbook", "guide"]),
            "Video_Games": _dt(_VG, ["Puzzle", "Casual", "Zen Games"],
                               ["puzzle game", "brain teaser", "logic game"]),
            "Home_and_Kitchen": _dt(["Storage & Organization"],
                                    ["Puzzle Tables", "Drawer Organizers", "Storage Bins"],
                                    ["drawer organizer", "storage bin", "shelf"]),
        },
    ),
    Theme(
        "racing",
        (("turbo", "engine", "horsepower", "garage"), ("race", "lap", "track", "checkered"),
         ("drift", "rally", "offroad", "mud")),
        ("Redline", "Torqueworks", "Apex Motor"),
        {
            "Books": _dt(["Engineering & Transportation", "Automotive"],
                         ["Repair & Maintenance", "Motor Sports", "Off-Road"],
                         ["manual", "racing history", "photo book"]),
            "Video_Games": _dt(_VG, ["Driving", "Racing", "Rally"],
                               ["racing game", "driving sim", "arcade racer"]),
            "Home_and_Kitchen": _dt(["Home Decor", "Wall Art"],
                                    ["Garage Signs", "Checkered Decor", "Model Cars"],
                                    ["garage sign", "model car", "neon sign"]),
        },
    ),
    Theme(
        "animals",
        (("puppy", "dog", "leash", "bark"), ("kitten", "cat", "whiskers", "purr"),
         ("wildlife", "fox", "owl", "forest")),
        ("Pawprint", "Whiskerly", "Foxglen"),
        {
            "Books": _dt(["Crafts, Hobbies & Home", "Pets & Animal Care"],
                         ["Dogs", "Cats", "Wildlife"],
                         ["pet care guide", "memoir", "story"]),
            "Video_Games": _dt(_VG, ["Pet Simulation", "Casual", "Adventure"],
                               ["pet sim", "animal adventure", "life sim"]),
            "Home_and_Kitchen": _dt(["Kitchen & Dining", "Dining & Entertaining"],
                                    ["Dog Lover Mugs", "Cat Lover Decor", "Woodland Decor"],
                                    ["coffee mug", "dish towel", "pillow"]),
        },
    ),
)

DOMAINS: dict[str, Domain] = {
    "Books": Domain(
        "Books", "Books", "Books",
        ("story", "characters", "author", "plot", "chapters", "pages", "writing", "ending"),
        "read", (" Press", " Books", " Publishing"),
        "Format:", (" Paperback", " Kindle Edition", " Hardcover", " Mass Market Paperback"),
        11.0,
    ),
    "Video_Games": Domain(
        "Video_Games", "Video Games", "Video Games",
        ("gameplay", "graphics", "controls", "levels", "multiplayer", "soundtrack", "missions"),
        "play", (" Studios", " Interactive", " Games"),
        "Platform:", (" PlayStation 4", " Xbox One", " Nintendo Switch", " PC"),
        29.0,
    ),
    "Home_and_Kitchen": Domain(
        "Home_and_Kitchen", "Home & Kitchen", "Amazon Home",
        ("quality", "material", "design", "size", "color", "price", "finish", "durable"),
        "buy", (" Home", " & Co.", " Living"),
        "Color:", (" Black", " White", " Gray", " Navy Blue", " Red", " Bronze", " Sage Green"),
        24.0,
    ),
}

PLATFORMS = ("PlayStation 4", "Xbox One", "Nintendo Switch", "PC")
GAME_SUFFIXES = ("Legends", "Origins", "Deluxe Edition", "Remastered", "Chronicles", "Unleashed",
                 "World", "Heroes", "Saga", "Adventures")
COLORS = ("Black", "White", "Gray", "Navy Blue", "Red", "Bronze", "Sage Green", "Ivory")
BOOK_ADJ = ("gripping", "heartwarming", "thrilling", "delightful", "captivating", "charming",
            "bold", "beautiful")
FIRST_NAMES = ("Mary", "James", "Linda", "Robert", "Patricia", "John", "Jennifer", "Michael",
               "Susan", "David", "Karen", "William", "Nancy", "Richard", "Lisa", "Joseph",
               "Sandra", "Thomas", "Donna", "Charles", "Carol", "Daniel", "Sharon", "Matthew",
               "Emily", "Kevin", "Laura", "Brian", "Rachel", "Jason", "Megan", "Eric")

POS_ADJ = ("wonderful", "fantastic", "amazing", "excellent", "delightful", "superb", "great",
           "lovely")
NEG_ADJ = ("boring", "disappointing", "flat", "cheap", "awkward", "dull", "messy", "poor")

# Review sentence banks. Slots: {noun} item noun, {w1} {w2} item words, {g} a domain word,
# {pa}/{na} positive/negative adjective, {u1} {u2} words of the reviewer's favourite facet,
# {verb} the domain verb. Which bank is used depends on the star rating.
POS_OPEN = ("Loved this {noun}!", "A truly {pa} {noun}.", "Highly recommend this {noun}.",
            "Five stars, no question.", "This {noun} exceeded my expectations.")
POS_BODY = ("The {w1} and the {w2} were {pa}.", "So much {w1} and {w2}, exactly what I wanted.",
            "The {g} felt {pa} and the {w1} theme really shines.",
            "I keep coming back to the {w2} parts.")
POS_TASTE = ("I love anything with {u1} and {u2}, and this delivered.",
             "As a big fan of {u1}, this was perfect for me.")
MID_OPEN = ("It was okay.", "Decent {noun}, nothing special.", "Mixed feelings about this {noun}.")
MID_BODY = ("The {w1} parts were fine but the {g} felt {na}.",
            "Some {w2} moments worked, others did not.")
NEG_OPEN = ("Not for me.", "Disappointed with this {noun}.", "I wanted to like this {noun}.",
            "Would not recommend.")
NEG_BODY = ("Too much {w1} and {w2} for my taste.", "The {g} felt {na} and the {w1} seemed forced.",
            "I gave up on the {w2} halfway.")
NEG_TASTE = ("I usually {verb} things about {u1} and {u2}, and this was nothing like that.",
             "I was hoping for more {u1}.")

SUMMARIES = {
    5: ("Five Stars", "Loved it", "Great {noun}", "Amazing {w1} {noun}", "Highly recommend"),
    4: ("Four Stars", "Very good", "Solid {noun}", "Good {w1} fun"),
    3: ("Three Stars", "It's okay", "Average {noun}"),
    2: ("Two Stars", "Disappointing", "Not great"),
    1: ("One Star", "Waste of money", "Did not like it"),
}
