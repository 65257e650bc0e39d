"""Numbers of RFC 4120 (and the RFCs that extend it) as named constants.

Flags follow the model's convention: a KerberosFlags BIT STRING is read as a 32-bit big-endian
integer, so RFC bit ``n`` is ``1 << (31 - n)`` (see :func:`flag`).

``ERROR_TEXT`` holds the texts MIT krb5 1.20 prints for each protocol error code (its krb5 error
table), so our clients and logs say what MIT's do.
"""

from __future__ import annotations

PVNO = 5  # RFC 4120 §5.1: pvno, tkt-vno and authenticator-vno are always 5


def flag(n: int) -> int:
    """The model's integer value of RFC KerberosFlags bit ``n`` (bit 0 is the most significant)."""
    if not 0 <= n <= 31:
        raise ValueError(f"flag bit {n} outside 0..31")
    return 1 << (31 - n)


def flag_bits(value: int) -> list[int]:
    """RFC bit numbers set in a flags integer, lowest bit number first."""
    return [n for n in range(32) if value & (1 << (31 - n))]


# --- Message types (RFC 4120 §7.5.7) -----------------------------------------------------------
KRB_AS_REQ = 10
KRB_AS_REP = 11
KRB_TGS_REQ = 12
KRB_TGS_REP = 13
KRB_AP_REQ = 14
KRB_AP_REP = 15
KRB_RESERVED16 = 16
KRB_RESERVED17 = 17
KRB_SAFE = 20
KRB_PRIV = 21
KRB_CRED = 22
KRB_ERROR = 30

# Application tags of inner (encrypted) parts (RFC 4120 §5.3, §5.4.2, §5.5)
TAG_TICKET = 1
TAG_AUTHENTICATOR = 2
TAG_ENC_TICKET_PART = 3
TAG_ENC_AS_REP_PART = 25
TAG_ENC_TGS_REP_PART = 26
TAG_ENC_AP_REP_PART = 27

# --- Name types (RFC 4120 §6.2) ----------------------------------------------------------------
NT_UNKNOWN = 0
NT_PRINCIPAL = 1
NT_SRV_INST = 2
NT_SRV_HST = 3
NT_SRV_XHST = 4
NT_UID = 5
NT_X500_PRINCIPAL = 6
NT_SMTP_NAME = 7
NT_ENTERPRISE = 10  # RFC 6806 §5
NT_WELLKNOWN = 11  # RFC 6111 §3

# --- Address types (RFC 4120 §7.5.3) -----------------------------------------------------------
ADDRTYPE_IPV4 = 2
ADDRTYPE_DIRECTIONAL = 3
ADDRTYPE_CHAOSNET = 5
ADDRTYPE_XNS = 6
ADDRTYPE_ISO = 7
ADDRTYPE_DECNET = 12
ADDRTYPE_APPLETALK = 16
ADDRTYPE_NETBIOS = 20
ADDRTYPE_IPV6 = 24

# --- Authorization data types (RFC 4120 §7.5.4, MS-PAC) ----------------------------------------
AD_IF_RELEVANT = 1
AD_INTENDED_FOR_SERVER = 2
AD_INTENDED_FOR_APPLICATION_CLASS = 3
AD_KDC_ISSUED = 4
AD_AND_OR = 5
AD_MANDATORY_TICKET_EXTENSIONS = 6
AD_IN_TICKET_EXTENSIONS = 7
AD_MANDATORY_FOR_KDC = 8
AD_WIN2K_PAC = 128

# --- Transited encodings (RFC 4120 §7.5.5) -----------------------------------------------------
DOMAIN_X500_COMPRESS = 1

# --- Pre-authentication data types (RFC 4120 §7.5.2, RFC 6113, RFC 6806, RFC 8070) -------------
PA_TGS_REQ = 1
PA_ENC_TIMESTAMP = 2
PA_PW_SALT = 3
PA_ENC_UNIX_TIME = 5
PA_SANDIA_SECUREID = 6
PA_SESAME = 7
PA_OSF_DCE = 8
PA_CYBERSAFE_SECUREID = 9
PA_AFS3_SALT = 10
PA_ETYPE_INFO = 11
PA_SAM_CHALLENGE = 12
PA_SAM_RESPONSE = 13
PA_PK_AS_REQ_OLD = 14
PA_PK_AS_REP_OLD = 15
PA_PK_AS_REQ = 16
PA_PK_AS_REP = 17
PA_ETYPE_INFO2 = 19
PA_USE_SPECIFIED_KVNO = 20
PA_SVR_REFERRAL_INFO = 20
PA_SAM_REDIRECT = 21
PA_GET_FROM_TYPED_DATA = 22
PA_SAM_ETYPE_INFO = 23
PA_ALT_PRINC = 24
PA_SAM_CHALLENGE_2 = 30
PA_SAM_RESPONSE_2 = 31
PA_EXTRA_TGT = 41
PA_TD_KRB_PRINCIPAL = 102
PA_TD_KRB_REALM = 103
PA_TD_TRUSTED_CERTIFIERS = 104
PA_TD_CERTIFICATE_INDEX = 105
PA_TD_APP_DEFINED_ERROR = 106
PA_TD_REQ_NONCE = 107
PA_TD_REQ_SEQ = 108
PA_PAC_REQUEST = 128
PA_FOR_USER = 129
PA_FX_COOKIE = 133
PA_AUTHENTICATION_SET = 134
PA_AUTH_SET_SELECTED = 135
PA_FX_FAST = 136
PA_FX_ERROR = 137
PA_ENCRYPTED_CHALLENGE = 138
PA_OTP_CHALLENGE = 141
PA_OTP_REQUEST = 142
PA_OTP_PIN_CHANGE = 144
PA_PKINIT_KX = 147
PA_REQ_ENC_PA_REP = 149
PA_AS_FRESHNESS = 150
PA_SPAKE = 151
PA_PAC_OPTIONS = 167

# --- KDC options (RFC 4120 §5.4.1; model convention: bit n = 1 << (31 - n)) --------------------
KDC_OPT_RESERVED = flag(0)
FORWARDABLE = flag(1)
FORWARDED = flag(2)
PROXIABLE = flag(3)
PROXY = flag(4)
ALLOW_POSTDATE = flag(5)
POSTDATED = flag(6)
RENEWABLE = flag(8)
OPT_HARDWARE_AUTH = flag(11)  # RFC 4120 lists it as unused; MIT keeps the name
CNAME_IN_ADDL_TKT = flag(14)  # RFC 4120 §5.4.1 (MS-SFU constrained delegation)
CANONICALIZE = flag(15)  # RFC 6806 §11
DISABLE_TRANSITED_CHECK = flag(26)
RENEWABLE_OK = flag(27)
ENC_TKT_IN_SKEY = flag(28)
RENEW = flag(30)
VALIDATE = flag(31)

# --- Ticket flags (RFC 4120 §5.3; same convention) ---------------------------------------------
TKT_FLG_RESERVED = flag(0)
# FORWARDABLE = flag(1), FORWARDED = flag(2), PROXIABLE = flag(3), PROXY = flag(4) as above
MAY_POSTDATE = flag(5)
# POSTDATED = flag(6)
INVALID = flag(7)
# RENEWABLE = flag(8)
INITIAL = flag(9)
PRE_AUTHENT = flag(10)
HW_AUTHENT = flag(11)
TRANSITED_POLICY_CHECKED = flag(12)
OK_AS_DELEGATE = flag(13)
ENC_PA_REP = flag(15)  # RFC 6806 §11
ANONYMOUS = flag(16)  # RFC 8062 §4.1

# --- AP options (RFC 4120 §5.5.1) --------------------------------------------------------------
AP_OPT_RESERVED = flag(0)
USE_SESSION_KEY = flag(1)
MUTUAL_REQUIRED = flag(2)

# --- Last request types (RFC 4120 §5.4.2) ------------------------------------------------------
LR_NONE = 0
LR_INITIAL_TGT = 1
LR_INITIAL = 2
LR_ISSUE_USE_TGT = 3
LR_RENEWAL = 4
LR_REQUEST = 5
LR_PW_EXPTIME = 6
LR_ACCT_EXPTIME = 7

# --- Key usage numbers (RFC 4120 §7.5.1) -------------------------------------------------------
KU_PA_ENC_TIMESTAMP = 1  # AS-REQ PA-ENC-TIMESTAMP, client key
KU_TICKET = 2  # AS-REP/TGS-REP ticket, service key
KU_AS_REP_ENC_PART = 3  # AS-REP enc-part, client key
KU_TGS_REQ_AD_SESSION_KEY = 4  # TGS-REQ authorization-data, TGS session key
KU_TGS_REQ_AD_SUBKEY = 5  # TGS-REQ authorization-data, TGS authenticator subkey
KU_TGS_REQ_AUTH_CKSUM = 6  # TGS-REQ PA-TGS-REQ authenticator checksum, TGS session key
KU_TGS_REQ_AUTH = 7  # TGS-REQ PA-TGS-REQ authenticator, TGS session key
KU_TGS_REP_ENC_PART_SESSION_KEY = 8  # TGS-REP enc-part, TGS session key
KU_TGS_REP_ENC_PART_SUBKEY = 9  # TGS-REP enc-part, TGS authenticator subkey
KU_AP_REQ_AUTH_CKSUM = 10  # AP-REQ authenticator checksum, application session key
KU_AP_REQ_AUTH = 11  # AP-REQ authenticator, application session key
KU_AP_REP_ENC_PART = 12  # AP-REP enc-part, application session key
KU_KRB_PRIV_ENC_PART = 13
KU_KRB_CRED_ENC_PART = 14
KU_KRB_SAFE_CKSUM = 15
KU_AD_KDC_ISSUED_CKSUM = 19
KU_FAST_REQ_CHKSUM = 50  # RFC 6113 §5.4.2
KU_FAST_ENC = 51
KU_FAST_REP = 52
KU_FAST_FINISHED = 53
KU_ENC_CHALLENGE_CLIENT = 54
KU_ENC_CHALLENGE_KDC = 55
KU_AS_REQ = 56  # RFC 6806 §11: PA-REQ-ENC-PA-REP checksum over the AS-REQ

# --- Error codes (RFC 4120 §7.5.9, RFC 4556, RFC 6113) -----------------------------------------
KDC_ERR_NONE = 0
KDC_ERR_NAME_EXP = 1
KDC_ERR_SERVICE_EXP = 2
KDC_ERR_BAD_PVNO = 3
KDC_ERR_C_OLD_MAST_KVNO = 4
KDC_ERR_S_OLD_MAST_KVNO = 5
KDC_ERR_C_PRINCIPAL_UNKNOWN = 6
KDC_ERR_S_PRINCIPAL_UNKNOWN = 7
KDC_ERR_PRINCIPAL_NOT_UNIQUE = 8
KDC_ERR_NULL_KEY = 9
KDC_ERR_CANNOT_POSTDATE = 10
KDC_ERR_NEVER_VALID = 11
KDC_ERR_POLICY = 12
KDC_ERR_BADOPTION = 13
KDC_ERR_ETYPE_NOSUPP = 14
KDC_ERR_SUMTYPE_NOSUPP = 15
KDC_ERR_PADATA_TYPE_NOSUPP = 16
KDC_ERR_TRTYPE_NOSUPP = 17
KDC_ERR_CLIENT_REVOKED = 18
KDC_ERR_SERVICE_REVOKED = 19
KDC_ERR_TGT_REVOKED = 20
KDC_ERR_CLIENT_NOTYET = 21
KDC_ERR_SERVICE_NOTYET = 22
KDC_ERR_KEY_EXPIRED = 23
KDC_ERR_PREAUTH_FAILED = 24
KDC_ERR_PREAUTH_REQUIRED = 25
KDC_ERR_SERVER_NOMATCH = 26
KDC_ERR_MUST_USE_USER2USER = 27
KDC_ERR_PATH_NOT_ACCEPTED = 28
KDC_ERR_SVC_UNAVAILABLE = 29
KRB_AP_ERR_BAD_INTEGRITY = 31
KRB_AP_ERR_TKT_EXPIRED = 32
KRB_AP_ERR_TKT_NYV = 33
KRB_AP_ERR_REPEAT = 34
KRB_AP_ERR_NOT_US = 35
KRB_AP_ERR_BADMATCH = 36
KRB_AP_ERR_SKEW = 37
KRB_AP_ERR_BADADDR = 38
KRB_AP_ERR_BADVERSION = 39
KRB_AP_ERR_MSG_TYPE = 40
KRB_AP_ERR_MODIFIED = 41
KRB_AP_ERR_BADORDER = 42
KRB_AP_ERR_ILL_CR_TKT = 43
KRB_AP_ERR_BADKEYVER = 44
KRB_AP_ERR_NOKEY = 45
KRB_AP_ERR_MUT_FAIL = 46
KRB_AP_ERR_BADDIRECTION = 47
KRB_AP_ERR_METHOD = 48
KRB_AP_ERR_BADSEQ = 49
KRB_AP_ERR_INAPP_CKSUM = 50
KRB_AP_PATH_NOT_ACCEPTED = 51
KRB_ERR_RESPONSE_TOO_BIG = 52
KRB_ERR_GENERIC = 60
KRB_ERR_FIELD_TOOLONG = 61
KDC_ERR_CLIENT_NOT_TRUSTED = 62
KDC_ERR_KDC_NOT_TRUSTED = 63
KDC_ERR_INVALID_SIG = 64
KDC_ERR_DH_KEY_PARAMETERS_NOT_ACCEPTED = 65
KDC_ERR_CERTIFICATE_MISMATCH = 66
KRB_AP_ERR_NO_TGT = 67
KDC_ERR_WRONG_REALM = 68
KRB_AP_ERR_USER_TO_USER_REQUIRED = 69
KDC_ERR_CANT_VERIFY_CERTIFICATE = 70
KDC_ERR_INVALID_CERTIFICATE = 71
KDC_ERR_REVOKED_CERTIFICATE = 72
KDC_ERR_REVOCATION_STATUS_UNKNOWN = 73
KDC_ERR_REVOCATION_STATUS_UNAVAILABLE = 74
KDC_ERR_CLIENT_NAME_MISMATCH = 75
KDC_ERR_KDC_NAME_MISMATCH = 76
KDC_ERR_INCONSISTENT_KEY_PURPOSE = 77
KDC_ERR_DIGEST_IN_CERT_NOT_ACCEPTED = 78
KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED = 79
KDC_ERR_DIGEST_IN_SIGNED_DATA_NOT_ACCEPTED = 80
KDC_ERR_PUBLIC_KEY_ENCRYPTION_NOT_SUPPORTED = 81
KRB_AP_ERR_IAKERB_KDC_NOT_FOUND = 85
KRB_AP_ERR_IAKERB_KDC_NO_RESPONSE = 86
KDC_ERR_PREAUTH_EXPIRED = 90
KDC_ERR_MORE_PREAUTH_DATA_REQUIRED = 91
KDC_ERR_UNKNOWN_CRITICAL_FAST_OPTIONS = 93
KDC_ERR_NO_ACCEPTABLE_KDF = 100

# What MIT krb5 1.20 prints for each code (its krb5 error table, checked against libkrb5).
ERROR_TEXT: dict[int, str] = {
    0: "No error",
    1: "Client's entry in database has expired",
    2: "Server's entry in database has expired",
    3: "Requested protocol version not supported",
    4: "Client's key is encrypted in an old master key",
    5: "Server's key is encrypted in an old master key",
    6: "Client not found in Kerberos database",
    7: "Server not found in Kerberos database",
    8: "Principal has multiple entries in Kerberos database",
    9: "Client or server has a null key",
    10: "Ticket is ineligible for postdating",
    11: "Requested effective lifetime is negative or too short",
    12: "KDC policy rejects request",
    13: "KDC can't fulfill requested option",
    14: "KDC has no support for encryption type",
    15: "KDC has no support for checksum type",
    16: "KDC has no support for padata type",
    17: "KDC has no support for transited type",
    18: "Client's credentials have been revoked",
    19: "Credentials for server have been revoked",
    20: "TGT has been revoked",
    21: "Client not yet valid - try again later",
    22: "Server not yet valid - try again later",
    23: "Password has expired",
    24: "Preauthentication failed",
    25: "Additional pre-authentication required",
    26: "Requested server and ticket don't match",
    27: "Server principal valid for user2user only",
    28: "KDC policy rejects transited path",
    29: "A service is not available that is required to process the request",
    31: "Decrypt integrity check failed",
    32: "Ticket expired",
    33: "Ticket not yet valid",
    34: "Request is a replay",
    35: "The ticket isn't for us",
    36: "Ticket/authenticator don't match",
    37: "Clock skew too great",
    38: "Incorrect net address",
    39: "Protocol version mismatch",
    40: "Invalid message type",
    41: "Message stream modified",
    42: "Message out of order",
    43: "Illegal cross-realm ticket",
    44: "Key version is not available",
    45: "Service key not available",
    46: "Mutual authentication failed",
    47: "Incorrect message direction",
    48: "Alternative authentication method required",
    49: "Incorrect sequence number in message",
    50: "Inappropriate type of checksum in message",
    51: "Policy rejects transited path",
    52: "Response too big for UDP, retry with TCP",
    60: "Generic error (see e-text)",
    61: "Field is too long for this implementation",
    62: "Client not trusted",
    63: "KDC not trusted",
    64: "Invalid signature",
    65: "Key parameters not accepted",
    66: "Certificate mismatch",
    67: "No ticket granting ticket",
    68: "Realm not local to KDC",
    69: "User to user required",
    70: "Can't verify certificate",
    71: "Invalid certificate",
    72: "Revoked certificate",
    73: "Revocation status unknown",
    74: "Revocation status unavailable",
    75: "Client name mismatch",
    76: "KDC name mismatch",
    77: "Inconsistent key purpose",
    78: "Digest in certificate not accepted",
    79: "Checksum must be included",
    80: "Digest in signed-data not accepted",
    81: "Public key encryption not supported",
    85: "The IAKERB proxy could not find a KDC",
    86: "The KDC did not respond to the IAKERB proxy",
    90: "Preauthentication expired",
    91: "More preauthentication data is required",
    93: "An unsupported critical FAST option was requested",
    100: "No acceptable KDF offered",
}

ERROR_NAME: dict[int, str] = {
    value: name
    for name, value in list(globals().items())
    if (
        name.startswith(("KDC_ERR_", "KRB_AP_ERR_", "KRB_ERR_"))
        or name == "KRB_AP_PATH_NOT_ACCEPTED"
    )
    and isinstance(value, int)
}


def error_text(code: int) -> str:
    """MIT's text for a protocol error code; unknown codes read like MIT's ("KRB5 error code N")."""
    return ERROR_TEXT.get(code, f"KRB5 error code {code}")
