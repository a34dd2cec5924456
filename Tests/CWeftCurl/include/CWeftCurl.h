#pragma once
// Test-only shim over libcurl's multi interface: curl_easy_setopt, curl_multi_setopt and
// curl_easy_getinfo are variadic, which Swift cannot call, so each use gets a fixed signature here.
#include <curl/curl.h>

typedef int (*weft_curl_socket_fn)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*weft_curl_timer_fn)(CURLM *multi, long timeout_ms, void *userp);
typedef size_t (*weft_curl_write_fn)(char *data, size_t size, size_t count, void *userdata);

int weft_curl_multi_callbacks(CURLM *multi, weft_curl_socket_fn socket, weft_curl_timer_fn timer, void *userp);
int weft_curl_easy_prepare(CURL *easy, const char *url, weft_curl_write_fn write, void *userdata);
void *weft_curl_easy_userdata(CURL *easy);
long weft_curl_response_code(CURL *easy);
