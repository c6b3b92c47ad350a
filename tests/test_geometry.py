import numpy as np

from wsseg.data.geometry import bounding_box, boxes_to_original, crop, field_of_view, normalise_intensity, paste, resize


def test_bounding_box_is_square_with_margin_and_centred_when_empty():
    mask = np.zeros((100, 100), bool)
    mask[40:60, 30:50] = True
    y0, x0, y1, x1 = bounding_box(mask, margin=0.5, min_size=10)
    assert (y1 - y0, x1 - x0) == (40, 40)
    assert ((y0 + y1) / 2, (x0 + x1) / 2) == (50, 40)
    assert bounding_box(np.zeros((100, 100), bool), 0.5, 20) == (40, 40, 60, 60)


def test_crop_then_paste_restores_the_region_at_any_output_resolution():
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 20:30, 24:40] = 1
    box = np.array([bounding_box(image[0] > 0, 0.25, 8)])
    patch = crop(image, box, 32)
    assert patch.shape == (1, 32, 32)
    back = paste(patch, box, (64, 64)) > 0.5
    np.testing.assert_array_equal(back, image > 0.5)
    doubled = paste(patch, boxes_to_original(box, (0, 0, 128, 128), 64), (128, 128)) > 0.5
    assert abs(int(doubled.sum()) - 4 * int(image.sum())) <= 8  # bilinear rounds the corners


def test_a_box_found_in_a_field_of_view_maps_back_to_the_original_image():
    original = np.zeros((1, 200, 100), np.float32)
    original[0, 90:110, 40:60] = 1
    view = field_of_view((200, 100), 0.5)
    assert view == (50, 25, 150, 75)
    grid = resize(original[:, view[0] : view[2], view[1] : view[3]], (64, 64))
    box = np.array([bounding_box(grid[0] > 0.5, 0.25, 8)])
    back = paste(crop(grid, box, 32), boxes_to_original(box, view, 64), (200, 100)) > 0.5
    assert abs(int(back.sum()) - int(original.sum())) <= 20
    assert back[0, 95:105, 45:55].all() and not back[0, :80].any()


def test_crop_reads_zeros_outside_the_image():
    image = np.ones((1, 16, 16), np.float32)
    patch = crop(image, np.array([[-16, -16, 16, 16]]), 8)
    assert patch[0, :4, :4].max() == 0 and patch[0, 4:, 4:].min() == 1


def test_normalise_intensity_and_resize():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    normalised = normalise_intensity(image)
    assert normalised.min() == 0 and normalised.max() == 1
    assert normalise_intensity(np.full((4, 4), 7.0)).max() == 0
    assert resize(normalised[None], (20, 20)).shape == (1, 20, 20)
    labels = resize(np.array([[[0, 3], [3, 0]]], np.float32), (4, 4), nearest=True)
    assert set(np.unique(labels)) == {0, 3}


def test_roi_normalise_stretches_each_crop_to_the_full_range():
    from wsseg.config import validate_params
    from wsseg.data.roi import roi_images

    images = np.zeros((2, 64, 64), np.float32)
    images[:, 16:48, 16:48] = np.linspace(0.2, 0.4, 32)[None, None]
    boxes = np.array([[16, 16, 48, 48]] * 2)
    plain = roi_images(images, boxes, validate_params({"data": {"roi_size": 32}}))
    stretched = roi_images(
        images, boxes, validate_params({"data": {"roi_size": 32, "additions": {"roi_normalise": True}}})
    )
    assert plain.max() <= 0.41
    assert stretched.min() == 0 and stretched.max() == 1
    assert np.corrcoef(plain[0].ravel(), stretched[0].ravel())[0, 1] > 0.99


def test_a_known_spacing_fixes_the_physical_field_of_view_and_maps_back():
    from wsseg.data.geometry import grid_view, to_grid

    assert grid_view((200, 100), 0.5, 64) == field_of_view((200, 100), 0.5)  # unknown spacing: the fraction
    view = grid_view((100, 100), 1.0, 64, spacing=2.0, grid_spacing=4.0)  # 64 px of 4 mm = 128 px of 2 mm
    assert view == (-14, -14, 114, 114)
    image = np.zeros((100, 100), np.float32)
    image[40:60, 30:50] = 1
    grid = to_grid(image, view, 64)
    assert grid.shape == (64, 64) and grid[:8].max() == 0  # the padded border reads zeros
    assert abs(grid.sum() * 4 - image.sum()) < 0.05 * image.sum()  # half the pixels per side
    back = paste(grid[None], np.array([view]), (100, 100))[0] > 0.5
    assert abs(int(back.sum()) - int(image.sum())) <= 40 and back[45:55, 35:45].all()
