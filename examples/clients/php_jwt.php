<?php
/**
 * Mint a short-lived HS256 JWT for one browser user in plain PHP (no JWT library needed).
 *
 * The site registered itself as a JWT issuer with algorithm HS256 and a base64url secret of at
 * least 32 bytes under a kid. Its server mints a token per user and page view (at most 300 s,
 * a fresh jti each time: every token is accepted once) and hands it to the browser, which sends
 * it as "Authorization: Bearer <token>".
 *
 * Command line (prints a token):
 *   RELAYGATE_JWT_SECRET=<base64url secret> php php_jwt.php token <issuer> <audience> <subject> [<kid>] [<now>]
 */

declare(strict_types=1);

function relaygate_b64url(string $data): string
{
    return rtrim(strtr(base64_encode($data), '+/', '-_'), '=');
}

function relaygate_b64url_decode(string $text): string
{
    $decoded = base64_decode(strtr($text, '-_', '+/'), true);
    if ($decoded === false) {
        throw new InvalidArgumentException('not base64url');
    }
    return $decoded;
}

/**
 * An HS256 token for $subject (e.g. (string) get_current_user_id()), valid $lifetime seconds.
 * $secret is the raw secret (relaygate_b64url_decode() of the registered value).
 */
function relaygate_mint_jwt(
    string $secret,
    string $issuer,
    string $audience,
    string $subject,
    ?string $kid = null,
    int $lifetime = 120,
    ?int $now = null
): string {
    $now = $now ?? time();
    $header = ['alg' => 'HS256', 'typ' => 'JWT'];
    if ($kid !== null) {
        $header['kid'] = $kid;
    }
    $claims = [
        'iss' => $issuer,
        'aud' => $audience,
        'sub' => $subject,
        'iat' => $now,
        'exp' => $now + min($lifetime, 300),
        'jti' => bin2hex(random_bytes(16)),
    ];
    $flags = JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR;
    $signingInput = relaygate_b64url(json_encode($header, $flags)) . '.'
        . relaygate_b64url(json_encode($claims, $flags));
    $signature = hash_hmac('sha256', $signingInput, $secret, true);
    return $signingInput . '.' . relaygate_b64url($signature);
}

if (PHP_SAPI === 'cli' && isset($argv) && realpath($argv[0]) === __FILE__) {
    $secret = getenv('RELAYGATE_JWT_SECRET');
    if (($argv[1] ?? '') !== 'token' || count($argv) < 5 || $secret === false || $secret === '') {
        fwrite(STDERR, "usage: RELAYGATE_JWT_SECRET=... php php_jwt.php token <issuer> <audience> <subject> [<kid>] [<now>]\n");
        exit(2);
    }
    $kid = isset($argv[5]) && $argv[5] !== '' ? $argv[5] : null;
    $now = isset($argv[6]) ? (int) $argv[6] : null;
    echo relaygate_mint_jwt(relaygate_b64url_decode($secret), $argv[2], $argv[3], $argv[4], $kid, 120, $now), "\n";
}
