import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeface.labels import (
    AGE,
    LabelSpace,
    attractiveness_space,
    distribution_std,
    epsilon_error,
    expectation,
    gaussian_distribution,
    kl_divergence,
)


def test_age_space_has_101_bins():
    assert AGE.num_bins == 101
    assert AGE.bins[0] == 0 and AGE.bins[-1] == 100


def test_attractiveness_space_bins_of_a_tenth():
    space = attractiveness_space(1, 7)
    assert space.num_bins == 61
    np.testing.assert_allclose(np.diff(space.bins), 0.1, atol=1e-5)


def test_invalid_space_is_rejected():
    with pytest.raises(ValueError):
        LabelSpace(5, 1, 1)


@settings(max_examples=60, deadline=None)
@given(label=st.floats(25, 75), sigma=st.floats(1, 6))
def test_expectation_of_gaussian_recovers_its_mean(label, sigma):
    dist = gaussian_distribution(label, sigma, AGE)
    assert dist.sum() == pytest.approx(1.0, abs=1e-5)
    assert expectation(dist, AGE) == pytest.approx(label, abs=1e-2)
    assert distribution_std(dist, AGE) == pytest.approx(sigma, rel=0.05)


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.floats(0, 100), min_size=1, max_size=8), sigma=st.floats(0.3, 10))
def test_distributions_sum_to_one_and_kl_is_zero_at_target(labels, sigma):
    dist = gaussian_distribution(np.array(labels), sigma, AGE)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(kl_divergence(dist, dist), 0.0, atol=1e-6)
    other = gaussian_distribution(np.array(labels) + 5, sigma, AGE)
    assert np.all(kl_divergence(dist, other) > 0)


def test_epsilon_error_bounds():
    mu = np.array([30.0, 40.0])
    sigma = np.array([3.0, 5.0])
    assert epsilon_error(mu, mu, sigma) == 0.0
    assert epsilon_error(mu + 1000, mu, sigma) == pytest.approx(1.0)
    assert epsilon_error(np.array([33.0]), np.array([30.0]), np.array([3.0])) == pytest.approx(1 - np.exp(-0.5))
