import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A websocket server in plain JDK: RFC 6455 handshake and framing over a
 * ServerSocket, one reader thread per connection. Text messages only, client
 * frames must be masked, messages over maxMessage bytes are refused with
 * close code 1009, pings are answered by pongs, and a close is echoed.
 */
final class WsServer {
    interface Handler {
        void onOpen(Conn c);
        void onMessage(Conn c, String text, long receivedNanos);
        void onClose(Conn c);
    }

    private static final String GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    private static final int MAX_HEADER = 16 * 1024;

    private final ServerSocket server;
    private final Handler handler;
    private final int maxMessage;

    WsServer(String host, int port, Handler handler, int maxMessage) throws IOException {
        this.server = new ServerSocket(port, 512, InetAddress.getByName(host));
        this.handler = handler;
        this.maxMessage = maxMessage;
        Thread t = new Thread(this::acceptLoop, "ws-accept");
        t.setDaemon(true);
        t.start();
    }

    int port() { return server.getLocalPort(); }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket s = server.accept();
                s.setTcpNoDelay(true);
                Thread t = new Thread(() -> serve(s), "ws-conn");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                if (server.isClosed()) return;
            }
        }
    }

    /** One websocket connection; send is safe from any thread. */
    static final class Conn {
        final Socket socket;
        private final OutputStream out;
        volatile boolean closed;
        /** Protocol state owned by the handler. */
        volatile Object attachment;

        Conn(Socket s) throws IOException {
            this.socket = s;
            this.out = s.getOutputStream();
        }

        void send(String text) { sendFrame(0x1, text.getBytes(StandardCharsets.UTF_8)); }

        synchronized void sendFrame(int opcode, byte[] p) {
            if (closed && opcode != 0x8) return;
            try {
                byte[] h;
                if (p.length < 126) {
                    h = new byte[] {(byte) (0x80 | opcode), (byte) p.length};
                } else if (p.length < 65536) {
                    h = new byte[] {(byte) (0x80 | opcode), 126, (byte) (p.length >>> 8), (byte) p.length};
                } else {
                    h = new byte[10];
                    h[0] = (byte) (0x80 | opcode);
                    h[1] = 127;
                    long n = p.length;
                    for (int i = 0; i < 8; i++) h[2 + i] = (byte) (n >>> (56 - 8 * i));
                }
                out.write(h);
                out.write(p);
                out.flush();
            } catch (IOException e) {
                closed = true;
                closeQuietly();
            }
        }

        void close(int code, String reason) {
            byte[] r = reason.getBytes(StandardCharsets.UTF_8);
            byte[] p = new byte[2 + r.length];
            p[0] = (byte) (code >>> 8);
            p[1] = (byte) code;
            System.arraycopy(r, 0, p, 2, r.length);
            sendFrame(0x8, p);
            closed = true;
            closeQuietly();
        }

        void closeQuietly() {
            try { socket.close(); } catch (IOException ignored) { }
        }
    }

    private void serve(Socket s) {
        Conn c = null;
        try {
            InputStream in = new BufferedInputStream(s.getInputStream(), 16 * 1024);
            s.setSoTimeout(30_000);
            Map<String, String> headers = new HashMap<>();
            String requestLine = readHead(in, headers);
            OutputStream out = s.getOutputStream();
            String key = headers.get("sec-websocket-key");
            if (requestLine == null || !requestLine.startsWith("GET ")
                    || !"websocket".equalsIgnoreCase(headers.getOrDefault("upgrade", ""))
                    || !headers.getOrDefault("connection", "").toLowerCase(Locale.ROOT).contains("upgrade")
                    || !"13".equals(headers.get("sec-websocket-version")) || key == null) {
                out.write(("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 29\r\nConnection: close\r\n\r\n"
                        + "expected a websocket upgrade\n").getBytes(StandardCharsets.US_ASCII));
                out.flush();
                s.close();
                return;
            }
            String accept = Base64.getEncoder().encodeToString(
                    MessageDigest.getInstance("SHA-1").digest((key.trim() + GUID).getBytes(StandardCharsets.US_ASCII)));
            StringBuilder resp = new StringBuilder("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
                    .append("Sec-WebSocket-Accept: ").append(accept).append("\r\n");
            String protos = headers.get("sec-websocket-protocol");
            if (protos != null && !protos.isBlank()) {
                resp.append("Sec-WebSocket-Protocol: ").append(protos.split(",")[0].trim()).append("\r\n");
            }
            resp.append("\r\n");
            out.write(resp.toString().getBytes(StandardCharsets.US_ASCII));
            out.flush();
            s.setSoTimeout(0);
            c = new Conn(s);
            handler.onOpen(c);
            readFrames(c, in);
        } catch (Exception e) {
            // A broken connection ends here; the handler hears onClose.
        } finally {
            if (c != null) {
                c.closed = true;
                handler.onClose(c);
            }
            try { s.close(); } catch (IOException ignored) { }
        }
    }

    /** Reads the request head; returns the request line, headers lowercased. */
    private static String readHead(InputStream in, Map<String, String> headers) throws IOException {
        StringBuilder line = new StringBuilder();
        String requestLine = null;
        int total = 0;
        while (true) {
            int b = in.read();
            if (b < 0 || ++total > MAX_HEADER) return null;
            if (b == '\n') {
                int n = line.length();
                if (n > 0 && line.charAt(n - 1) == '\r') line.setLength(n - 1);
                if (line.length() == 0) return requestLine;
                if (requestLine == null) {
                    requestLine = line.toString();
                } else {
                    int colon = line.indexOf(":");
                    if (colon > 0) {
                        String name = line.substring(0, colon).trim().toLowerCase(Locale.ROOT);
                        String value = line.substring(colon + 1).trim();
                        headers.merge(name, value, (a, v) -> a + ", " + v);
                    }
                }
                line.setLength(0);
            } else {
                line.append((char) b);
            }
        }
    }

    private void readFrames(Conn c, InputStream in) throws IOException {
        byte[] message = null;
        int messageLen = 0;
        long started = 0;
        while (!c.closed) {
            int b0 = in.read();
            int b1 = in.read();
            if (b0 < 0 || b1 < 0) return;
            boolean fin = (b0 & 0x80) != 0;
            int opcode = b0 & 0x0f;
            if ((b0 & 0x70) != 0) { c.close(1002, "no extension negotiated"); return; }
            if ((b1 & 0x80) == 0) { c.close(1002, "client frames must be masked"); return; }
            long len = b1 & 0x7f;
            if (len == 126) {
                len = (readByte(in) << 8) | readByte(in);
            } else if (len == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = (len << 8) | readByte(in);
            }
            boolean control = opcode >= 0x8;
            if (control && (len > 125 || !fin)) { c.close(1002, "bad control frame"); return; }
            if (len < 0 || len + messageLen > maxMessage) { c.close(1009, "message too big"); return; }
            byte[] mask = readFully(in, 4);
            byte[] p = readFully(in, (int) len);
            for (int i = 0; i < p.length; i++) p[i] ^= mask[i & 3];
            switch (opcode) {
                case 0x8: {
                    int code = p.length >= 2 ? ((p[0] & 0xff) << 8) | (p[1] & 0xff) : 1000;
                    c.close(code == 1005 || code < 1000 ? 1000 : code, "");
                    return;
                }
                case 0x9: c.sendFrame(0xA, p); continue;
                case 0xA: continue;
                case 0x2: c.close(1003, "text messages only"); return;
                case 0x1:
                    if (message != null) { c.close(1002, "new message inside a fragmented one"); return; }
                    started = System.nanoTime();
                    message = new byte[Math.max(p.length, 256)];
                    messageLen = 0;
                    break;
                case 0x0:
                    if (message == null) { c.close(1002, "continuation without a message"); return; }
                    break;
                default: c.close(1002, "unknown opcode"); return;
            }
            if (messageLen + p.length > message.length) {
                byte[] grown = new byte[Math.max(message.length * 2, messageLen + p.length)];
                System.arraycopy(message, 0, grown, 0, messageLen);
                message = grown;
            }
            System.arraycopy(p, 0, message, messageLen, p.length);
            messageLen += p.length;
            if (fin) {
                String text = new String(message, 0, messageLen, StandardCharsets.UTF_8);
                message = null;
                messageLen = 0;
                handler.onMessage(c, text, started);
            }
        }
    }

    private static long readByte(InputStream in) throws IOException {
        int b = in.read();
        if (b < 0) throw new IOException("eof in frame header");
        return b;
    }

    private static byte[] readFully(InputStream in, int n) throws IOException {
        byte[] b = new byte[n];
        int off = 0;
        while (off < n) {
            int r = in.read(b, off, n - off);
            if (r < 0) throw new IOException("eof in frame");
            off += r;
        }
        return b;
    }

    void close() {
        try { server.close(); } catch (IOException ignored) { }
    }
}
