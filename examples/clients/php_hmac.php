<?php
/**
 * Call Relaygate with an HMAC-signed request from PHP (e.g. a WordPress plugin).
 *
 * The key itself is never sent: each request carries the key id, a timestamp and an
 * HMAC-SHA256 signature over "METHOD\npath\ntimestamp\nsha256(body)". Sign the exact body
 * string you send (encode the JSON once).
 *
 * Command line:
 *   RELAYGATE_URL=http://127.0.0.1:8080 RELAYGATE_KEY_ID=... RELAYGATE_SIGNING_SECRET=... \
 *       php php_hmac.php chat "Say hello"
 *   RELAYGATE_SIGNING_SECRET=... php php_hmac.php headers <key id> <method> <path> [<timestamp>] < body
 *       (prints the three headers as JSON)
 */

declare(strict_types=1);

/**
 * The three signature headers. $path is the request path plus "?query", exactly as sent.
 */
function relaygate_signed_headers(
    string $keyId,
    string $secret,
    string $method,
    string $path,
    string $body,
    ?int $timestamp = null
): array {
    $stamp = (string) ($timestamp ?? time());
    $canonical = strtoupper($method) . "\n" . $path . "\n" . $stamp . "\n" . hash('sha256', $body);
    return [
        'x-relaygate-key-id' => $keyId,
        'x-relaygate-timestamp' => $stamp,
        'x-relaygate-signature' => 'v1=' . hash_hmac('sha256', $canonical, $secret),
    ];
}

/**
 * POST /v1/chat/completions, signed. Returns [status, decoded JSON answer].
 * Uses wp_remote_post() inside WordPress, PHP's HTTP stream wrapper elsewhere.
 */
function relaygate_chat_signed(
    string $baseUrl,
    string $keyId,
    string $secret,
    string $prompt,
    ?string $user = null
): array {
    $url = rtrim($baseUrl, '/') . '/v1/chat/completions';
    $payload = ['model' => 'fast', 'messages' => [['role' => 'user', 'content' => $prompt]]];
    if ($user !== null) {
        $payload['user'] = $user; // the end user, e.g. (string) get_current_user_id()
    }
    $body = json_encode($payload, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
    $parts = parse_url($url);
    $path = ($parts['path'] ?? '/') . (isset($parts['query']) ? '?' . $parts['query'] : '');
    $headers = relaygate_signed_headers($keyId, $secret, 'POST', $path, $body);
    $headers['content-type'] = 'application/json';

    if (function_exists('wp_remote_post')) {
        // Pass the body as a string: an array would be form-encoded and no longer match.
        $response = wp_remote_post($url, ['headers' => $headers, 'body' => $body, 'timeout' => 60]);
        if (is_wp_error($response)) {
            return [0, ['error' => ['message' => $response->get_error_message()]]];
        }
        return [wp_remote_retrieve_response_code($response),
                json_decode(wp_remote_retrieve_body($response), true)];
    }

    $lines = [];
    foreach ($headers as $name => $value) {
        $lines[] = "$name: $value";
    }
    $context = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => implode("\r\n", $lines),
        'content' => $body,
        'timeout' => 60,
        'ignore_errors' => true, // read the JSON error body of a 401 too
    ]]);
    $answer = file_get_contents($url, false, $context);
    $status = 0;
    foreach ($http_response_header ?? [] as $line) {
        if (preg_match('#^HTTP/\S+ (\d{3})#', $line, $m)) {
            $status = (int) $m[1];
        }
    }
    return [$status, $answer === false ? null : json_decode($answer, true)];
}

if (PHP_SAPI === 'cli' && isset($argv) && realpath($argv[0]) === __FILE__) {
    $secret = getenv('RELAYGATE_SIGNING_SECRET');
    if ($secret === false || $secret === '') {
        fwrite(STDERR, "set RELAYGATE_SIGNING_SECRET\n");
        exit(2);
    }
    if (($argv[1] ?? '') === 'headers' && count($argv) >= 5) {
        $stamp = isset($argv[5]) ? (int) $argv[5] : null;
        $body = stream_get_contents(STDIN);
        $headers = relaygate_signed_headers($argv[2], $secret, $argv[3], $argv[4], $body, $stamp);
        echo json_encode($headers, JSON_UNESCAPED_SLASHES), "\n";
    } elseif (($argv[1] ?? '') === 'chat') {
        [$status, $answer] = relaygate_chat_signed(
            getenv('RELAYGATE_URL') ?: 'http://127.0.0.1:8080',
            (string) getenv('RELAYGATE_KEY_ID'),
            $secret,
            implode(' ', array_slice($argv, 2)) ?: 'Say hello',
            '42'
        );
        echo $status, "\n", json_encode($answer, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
    } else {
        fwrite(STDERR, "usage: php php_hmac.php chat <prompt> | headers <key id> <method> <path> [<timestamp>]\n");
        exit(2);
    }
}
