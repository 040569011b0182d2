using System.Security.Cryptography;
using System.Text;

namespace Truestock.Connectors.Webhook;

/// <summary>
/// The webhook signature: <c>sha256=</c> followed by the lowercase hex HMAC-SHA256 of the exact request
/// body bytes, keyed with the channel's secret (UTF-8). Receivers recompute it over the raw body they
/// received (never over re-serialized JSON) and compare in constant time.
/// </summary>
public static class WebhookSignature
{
    /// <summary>The scheme prefix of the header value.</summary>
    public const string Prefix = "sha256=";

    /// <summary>The default header that carries the signature.</summary>
    public const string HeaderDefault = "X-Truestock-Signature";

    /// <summary>Computes the header value for <paramref name="body"/>.</summary>
    public static string Compute(string secret, ReadOnlySpan<byte> body)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        var key = Encoding.UTF8.GetBytes(secret);
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(key, body, mac);
        return Prefix + Convert.ToHexStringLower(mac);
    }

    /// <summary>True when <paramref name="header"/> is the signature of <paramref name="body"/> (constant-time comparison).</summary>
    public static bool Verify(string secret, ReadOnlySpan<byte> body, string? header)
    {
        if (string.IsNullOrEmpty(secret) || header is null)
        {
            return false;
        }
        var expected = Encoding.ASCII.GetBytes(Compute(secret, body));
        var actual = Encoding.ASCII.GetBytes(header.Trim());
        return CryptographicOperations.FixedTimeEquals(expected, actual);
    }
}
