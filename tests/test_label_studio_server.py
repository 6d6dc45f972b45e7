"""The `label_studio_server` fixture: a real Label Studio server that the project's client reaches."""

import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

pytestmark = pytest.mark.label_studio


def test_legacy_token_authenticates(label_studio_server):
    client = LabelStudio(base_url=label_studio_server.url, api_key=label_studio_server.legacy_token)
    assert client.users.whoami().email == label_studio_server.username


def test_personal_token_authenticates(label_studio_server):
    # The client exchanges the personal access token (a JWT refresh token) for an access token.
    client = LabelStudio(base_url=label_studio_server.url, api_key=label_studio_server.personal_token)
    assert client.users.whoami().email == label_studio_server.username


def test_wrong_token_fails(label_studio_server):
    client = LabelStudio(base_url=label_studio_server.url, api_key="0" * 40)
    with pytest.raises(ApiError) as error:
        client.users.whoami()
    assert error.value.status_code == 401
