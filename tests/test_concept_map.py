"""Class names of CLIP_benchmark's datasets mapped to the paper's concept ids (letitwag.concept_map).

The CLIP_benchmark spellings below are its own (``en_classnames.json``, TFDS / torchvision names); where a
list is built from the paper's, the comment says which CLIP_benchmark rule it mirrors.
"""

import pytest

from letitwag.concept_map import class_concept_map, map_classes, unique_class_names
from letitwag.concepts import Concept, ConceptList, bundled_concepts
from letitwag.downstream import downstream_datasets, downstream_for_source

CIFAR10_TFDS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_cifar10_automobile_is_the_papers_car_and_plane_its_airplane():
    mapped = class_concept_map(CIFAR10_TFDS, "/data/wds_vtab-cifar10")
    assert mapped.concept_list == "cifar10" and mapped.unmapped == []
    assert mapped.class_concepts["automobile"] == "car" and mapped.class_concepts["truck"] == "truck"
    assert mapped.to_json()["match"] == {"rename": 1, "exact": 9, "normalized": 0, "alias": 0, "reordered": 0}
    # the paper's own zero-shot results say "plane"
    assert class_concept_map(["plane", "car"], "cifar10").class_concepts == {"plane": "airplane", "car": "car"}


def test_imagenet_names_repeated_by_clip_benchmark_map_to_distinct_concepts():
    paper = bundled_concepts("imagenet").ids
    clip_benchmark = list(paper)
    clip_benchmark[744], clip_benchmark[836] = "missile", "sunglasses"  # en_classnames.json's two repeats
    names = unique_class_names(clip_benchmark)
    assert names[657] == "missile" and names[744] == "missile (class 744)"
    assert names[836] == "sunglasses" and names[837] == "sunglasses (class 837)"
    mapped = class_concept_map(names, "clip-benchmark/wds_imagenet1k")
    assert list(mapped.concepts) == paper  # every class its own concept, in order
    assert mapped.class_concepts["missile (class 744)"] == "projectile"


def test_caltech101_background_is_listed_unmapped_and_descriptive_names_are_renamed():
    names = ["background", "off-center face", "centered face", "leopard", "side of a car", "head of a  crocodile",
             "snoopy (cartoon beagle)", "yin and yang symbol", "Motorbikes"]
    mapped = class_concept_map(names, "wds_vtab-caltech101")
    assert mapped.unmapped == ["background"]
    assert mapped.class_concepts == {"off-center face": "face", "centered face": "face", "leopard": "leopard",
                                     "side of a car": "car_side", "head of a  crocodile": "crocodile_head",
                                     "snoopy (cartoon beagle)": "snoopy", "yin and yang symbol": "yin_yang",
                                     "Motorbikes": "motorbike"}


def test_same_words_in_another_order_match_cars_and_sun397():
    cars = bundled_concepts("stanfordcars").ids
    year_last = [" ".join(c.split()[1:] + c.split()[:1]) for c in cars]  # torchvision: "AM General Hummer SUV 2000"
    mapped = class_concept_map(year_last, "wds_cars")
    assert list(mapped.concepts) == cars and set(mapped.methods) == {"reordered"}
    # torchvision's SUN397 "apartment_building/outdoor", with CLIP_benchmark's "_" and "/" -> " "
    sun = class_concept_map(["apartment building outdoor", "apse indoor", "abbey"], "wds_sun397")
    assert sun.class_concepts == {"apartment building outdoor": "outdoor apartment_building",
                                  "apse indoor": "indoor apse", "abbey": "abbey"}


def test_spellings_aliases_and_what_never_guesses():
    concepts = ConceptList([Concept("great white shark"), Concept("great_white_shark"), Concept("Artic_Tern",
                           aliases=("Arctic Tern",)), Concept("red fox"), Concept("fox red")], "toy")
    mapped = map_classes(["Great-White Shark", "arctic tern", "fox_red", "red fox", "unknown thing"], concepts)
    assert mapped.concepts == ("great white shark", "Artic_Tern", "fox red", "red fox", None)
    assert mapped.methods == ("normalized", "alias", "normalized", "exact", None)
    # two concepts with the same words in another order: no reordered guess
    assert map_classes(["fox of red"], concepts).unmapped == ["fox of red"]


def test_catalogue_renames_point_into_their_lists_and_folders_are_recognised():
    for dataset in downstream_datasets():
        ids = set(bundled_concepts(dataset.name).ids)
        assert set(dataset.renames.values()) <= ids, dataset.name
        for folder in dataset.folder_names():
            assert downstream_for_source(f"/data/{folder}") == dataset
    assert downstream_for_source("/data/my_own_set") is None
    assert class_concept_map(["a", "b"], "/data/my_own_set") is None
    assert class_concept_map(CIFAR10_TFDS, "/data/my_own_set", "none") is None
    explicit = class_concept_map(CIFAR10_TFDS, "/data/my_own_set", "cifar10")
    assert explicit.class_concepts["automobile"] == "car"


@pytest.mark.parametrize("name, expected", [("wds_vtab-pets", "oxfordpets"), ("wds_mscoco_captions", "coco"),
                                            ("nlphuji/flickr_1k_test_image_text_retrieval", "flickr"),
                                            ("bethgelab/Let-It-Wag", "let-it-wag")])
def test_datasets_are_found_by_hub_id_or_folder_name(name, expected):
    assert downstream_for_source(name).name == expected
