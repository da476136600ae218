"""The synthetic world's vocabulary: categories, synonyms, attributes and indirect phrasings.

Each leaf category has a canonical word (what head queries type), synonyms (what some titles
use instead, so lexical match misses them) and indirect needs (queries that never name the
category, e.g. "something to wear to a beach wedding").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Leaf:
    parent: str
    word: str
    synonyms: tuple[str, ...]
    needs: tuple[str, ...]
    median_price: float


LEAVES: tuple[Leaf, ...] = (
    Leaf("clothing", "dress", ("frock", "gown"), ("something to wear to a {style} wedding", "outfit for a {style} party"), 60),
    Leaf("clothing", "jacket", ("coat", "blazer"), ("keep warm on {style} evenings", "layer for a chilly {style} day"), 90),
    Leaf("clothing", "shirt", ("blouse", "top"), ("look sharp at a {style} meeting", "something light for {style} weather"), 35),
    Leaf("clothing", "jeans", ("denim", "trousers"), ("everyday bottoms for {style} days",), 50),
    Leaf("shoes", "sneakers", ("trainers", "kicks"), ("for my morning jog", "comfortable for walking all day"), 80),
    Leaf("shoes", "boots", ("booties", "wellies"), ("keep feet dry on {style} hikes", "for muddy walks"), 110),
    Leaf("shoes", "sandals", ("flipflops", "slides"), ("open toe for the {style} beach", "summer footwear"), 30),
    Leaf("shoes", "heels", ("pumps", "stilettos"), ("elegant footwear for a {style} gala",), 75),
    Leaf("electronics", "headphones", ("earbuds", "headset"), ("listen to music on the train", "block noise on a flight"), 70),
    Leaf("electronics", "speaker", ("soundbar", "boombox"), ("play music at a {style} party",), 90),
    Leaf("electronics", "charger", ("adapter", "powerbank"), ("keep my phone alive on trips",), 25),
    Leaf("electronics", "camera", ("camcorder", "webcam"), ("take photos on a {style} holiday", "record video calls"), 250),
    Leaf("home", "lamp", ("light", "lantern"), ("brighten a dark reading corner",), 45),
    Leaf("home", "rug", ("carpet", "mat"), ("warm floor for the living room",), 85),
    Leaf("home", "pillow", ("cushion", "bolster"), ("sleep better at night", "comfy couch accent"), 25),
    Leaf("home", "curtains", ("drapes", "blinds"), ("block morning sun in the bedroom",), 55),
    Leaf("beauty", "lipstick", ("gloss", "balm"), ("colour for lips at a {style} party",), 18),
    Leaf("beauty", "perfume", ("fragrance", "cologne"), ("smell nice for a {style} date", "a scent gift for her"), 65),
    Leaf("beauty", "moisturiser", ("cream", "lotion"), ("fix dry skin in winter",), 22),
    Leaf("beauty", "shampoo", ("cleanser", "wash"), ("clean hair after the gym",), 12),
    Leaf("sports", "yoga mat", ("exercise mat", "pilates mat"), ("stretch at home", "floor workouts"), 30),
    Leaf("sports", "dumbbells", ("weights", "kettlebell"), ("build strength at home",), 45),
    Leaf("sports", "tent", ("shelter", "canopy"), ("sleep outside on a {style} camping trip",), 140),
    Leaf("sports", "bicycle", ("bike", "cycle"), ("ride to work", "get around town cheaply"), 400),
    Leaf("toys", "puzzle", ("jigsaw", "brainteaser"), ("keep kids busy on a rainy day",), 20),
    Leaf("toys", "doll", ("figurine", "plush"), ("a present for a little girl",), 28),
    Leaf("toys", "blocks", ("bricks", "lego"), ("building toy for a toddler",), 35),
    Leaf("toys", "kite", ("glider", "drone"), ("fun at the {style} beach with kids",), 25),
    Leaf("kitchen", "mug", ("cup", "tumbler"), ("keep my coffee hot", "morning tea"), 15),
    Leaf("kitchen", "pan", ("skillet", "wok"), ("cook eggs without sticking", "fry dinner quickly"), 40),
    Leaf("kitchen", "knife", ("cleaver", "blade"), ("chop vegetables fast",), 35),
    Leaf("kitchen", "blender", ("mixer", "juicer"), ("make smoothies every morning",), 80),
)

BRANDS = ("acme", "nordik", "velora", "kumo", "brightway", "oakline", "zento", "marlow",
          "peakform", "lumen", "havana", "tessel", "rivo", "solent", "quill", "brio")
COLOURS = ("black", "white", "red", "blue", "green", "grey", "pink", "beige", "navy", "yellow")
MATERIALS = ("cotton", "leather", "wool", "steel", "wooden", "silk", "plastic", "linen")
STYLES = ("beach", "formal", "casual", "office", "outdoor", "vintage", "party", "classic")

ATTRIBUTES = {"brand": BRANDS, "colour": COLOURS, "material": MATERIALS, "style": STYLES}
