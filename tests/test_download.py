"""Pretrained weights by URL, against a local HTTP server on 127.0.0.1:
downloaded once into the torch hub cache, checked against a known hash,
never left half-written."""
import hashlib
import http.server
import os
import threading

import pytest
import torch

from conftest import randomize
from mmvit.models import CMT
from mmvit.utils.checkpoint import download, known_sha256


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}  # path -> (bytes, bytes actually sent)
    requests = []

    def do_GET(self):  # noqa: N802 (the http.server API)
        self.requests.append(self.path)
        if self.path not in self.files:
            self.send_error(404)
            return
        body, sent = self.files[self.path]
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body[:sent])  # fewer bytes: the server dies
        self.wfile.flush()
        if sent < len(body):
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.files, _Handler.requests = {}, []
    yield f'http://127.0.0.1:{httpd.server_address[1]}', _Handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A torch hub cache of this test only."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path / 'hub' / 'checkpoints'
    torch.hub.set_dir(old)


def _official_cmt_file(tmp_path):
    """CMT-ti weights in the official layout (``model``, official keys)."""
    from test_cmt import official_state_dict
    source = randomize(CMT('ti'))
    path = tmp_path / 'cmt_tiny.pth'
    torch.save({'model': official_state_dict(source)}, path)
    return source, path.read_bytes()


def test_url_checkpoint_downloads_once_and_loads(server, hub, tmp_path):
    base, handler = server
    source, body = _official_cmt_file(tmp_path)
    digest = hashlib.sha256(body).hexdigest()
    handler.files['/release/cmt_tiny.pth'] = (body, len(body))
    url = f'{base}/release/cmt_tiny.pth'
    for _ in range(2):
        model = CMT('ti', init_cfg=dict(type='Pretrained', checkpoint=url,
                                        sha256=digest))
        model.init_weights()
        for key, value in source.state_dict().items():
            if key.startswith('stages.'):  # what the official file holds
                assert torch.equal(model.state_dict()[key], value), key
    assert handler.requests == ['/release/cmt_tiny.pth']  # cached after one
    assert sorted(os.listdir(hub)) == ['cmt_tiny.pth']
    # the torch hub convention: a hash prefix in the file name
    handler.files[f'/cmt_tiny-{digest[:10]}.pth'] = (body, len(body))
    assert known_sha256(f'{base}/cmt_tiny-{digest[:10]}.pth') == digest[:10]
    assert download(f'{base}/cmt_tiny-{digest[:10]}.pth')


def test_wrong_hash_is_refused_and_nothing_is_cached(server, hub, tmp_path):
    base, handler = server
    _, body = _official_cmt_file(tmp_path)
    handler.files['/cmt_tiny.pth'] = (body, len(body))
    model = CMT('ti', init_cfg=dict(type='Pretrained',
                                    checkpoint=f'{base}/cmt_tiny.pth',
                                    sha256='0' * 64))
    # torch.hub's hash check
    with pytest.raises(RuntimeError, match=r'downloading .*cmt_tiny\.pth '
                       r'failed \(RuntimeError: invalid hash value'):
        model.init_weights()
    assert not hub.exists() or os.listdir(hub) == []
    # a damaged file already in the cache is named, not used
    os.makedirs(hub, exist_ok=True)
    (hub / 'cmt_tiny.pth').write_bytes(body[:100])
    with pytest.raises(RuntimeError, match=r'cached .*cmt_tiny\.pth.*delete '
                       'it'):
        download(f'{base}/cmt_tiny.pth',
                 sha256=hashlib.sha256(body).hexdigest())


def test_server_stopping_mid_file_leaves_nothing(server, hub, tmp_path):
    base, handler = server
    _, body = _official_cmt_file(tmp_path)
    handler.files['/cmt_tiny.pth'] = (body, len(body) // 3)
    model = CMT('ti', init_cfg=dict(type='Pretrained',
                                    checkpoint=f'{base}/cmt_tiny.pth'))
    with pytest.raises(RuntimeError, match=rf'downloading {base}/cmt_tiny'
                       r'\.pth failed .*arrived incomplete.*nothing was '
                       'cached'):
        model.init_weights()
    assert os.listdir(hub) == []
    with pytest.raises(RuntimeError, match='HTTPError.*404'):
        download(f'{base}/missing.pth')
    assert os.listdir(hub) == []


def test_missing_official_file_says_where_to_get_it(tmp_path):
    from mmvit.models import CASViT
    model = CASViT('s', init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'cas_vit_s.pth')))
    with pytest.raises(FileNotFoundError, match='Google Drive.*checkpoints/'
                       r'cas_vit_\{xs,s,m,t\}\.pth'):
        model.init_weights()
