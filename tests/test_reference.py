import numpy as np

from wsseg.reference import label_free, otsu_inside


def wall_with_bright_sector() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 32 px ring of dim wall whose right-hand quarter is bright (the 'scar')."""
    yy, xx = np.mgrid[:32, :32] - 15.5
    radius = np.hypot(yy, xx)
    wall = (radius > 8) & (radius < 12)
    scar = wall & (xx > 6)
    image = np.where(scar, 0.9, np.where(wall, 0.3, 0.6)).astype(np.float32)
    return image, wall, scar


def test_otsu_inside_keeps_the_bright_part_of_the_wall_only():
    image, wall, scar = wall_with_bright_sector()
    np.testing.assert_array_equal(otsu_inside(image, wall), scar)


def test_otsu_inside_is_empty_for_a_uniform_or_missing_wall():
    image, wall, _ = wall_with_bright_sector()
    assert not otsu_inside(np.full_like(image, 0.5), wall).any()
    assert not otsu_inside(image, np.zeros_like(wall)).any()


def test_the_gated_reference_keeps_only_slices_the_classifier_flags():
    image, wall, scar = wall_with_bright_sector()
    masks = label_free(np.stack([image, image]), np.stack([wall, wall]), np.array([0.9, 0.2]))
    np.testing.assert_array_equal(masks["otsu"], np.stack([scar, scar]))
    np.testing.assert_array_equal(masks["otsu_gated"][0], scar)
    assert not masks["otsu_gated"][1].any()
    assert set(label_free(image[None], wall[None])) == {"otsu"}
