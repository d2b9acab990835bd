#!/usr/bin/env python3
"""A minimal Phoenix V2 client for the install test: connects over
WebSocket to 127.0.0.1:PORT, joins "echo:install", sends an event and
checks that examples/embed replies with the same payload.
    echo_client.py PORT"""
import json
import os
import socket
import struct
import sys


def send_text(sock, text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = struct.pack('!BB', 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack('!BBH', 0x81, 0x80 | 126, n)
    else:
        head = struct.pack('!BBQ', 0x81, 0x80 | 127, n)
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(sock, n):
    buf = b''
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError('connection closed')
        buf += chunk
    return buf


def recv_text(sock):
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7f
    if n == 126:
        n = struct.unpack('!H', recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack('!Q', recv_exact(sock, 8))[0]
    if b0 != 0x81 or b1 & 0x80:
        raise ValueError('unexpected frame 0x%02x 0x%02x' % (b0, b1))
    return json.loads(recv_exact(sock, n))


def main():
    port = int(sys.argv[1])
    sock = socket.create_connection(('127.0.0.1', port), timeout=10)
    sock.sendall(('GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\n'
                  'Host: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
                  'Sec-WebSocket-Version: 13\r\n\r\n' % port).encode())
    head = b''
    while b'\r\n\r\n' not in head:
        head += recv_exact(sock, 1)
    status = head.split(b'\r\n', 1)[0]
    if b' 101 ' not in status:
        sys.exit('upgrade refused: %r' % status)
    send_text(sock, json.dumps(['1', '1', 'echo:install', 'phx_join', {}]))
    reply = recv_text(sock)
    if reply[:4] != ['1', '1', 'echo:install', 'phx_reply'] or reply[4]['status'] != 'ok':
        sys.exit('join: %r' % reply)
    payload = {'hello': 'from the install test', 'n': [1, 2, 3]}
    send_text(sock, json.dumps(['1', '2', 'echo:install', 'shout', payload]))
    reply = recv_text(sock)
    if reply != ['1', '2', 'echo:install', 'phx_reply', {'status': 'ok', 'response': payload}]:
        sys.exit('echo: %r' % reply)
    print('echo ok')
    sock.close()


if __name__ == '__main__':
    main()
