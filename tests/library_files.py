# ruff: noqa: E501, W291  (files as the tools export them: long lines, "ER  - " with its space)
"""Small, realistic bibliographic files for the library tests (issue 15), written by the tests:
the same four papers as each format exports them, with each format's usual oddities."""

from __future__ import annotations

from pathlib import Path

SEGMAMBA = "SegMamba: Long-range Sequential Modeling Mamba for 3D Medical Image Segmentation"
SEGMAMBA_ABSTRACT = (
    "The Transformer architecture has shown a remarkable ability in modeling global relationships. "
    "We introduce SegMamba, a novel 3D medical image segmentation model, designed to capture "
    "long-range dependencies within whole volume features. Experiments on the BraTS2023 dataset "
    "show that SegMamba reaches a Dice score of 91.3% while being 50% faster."
)
SEPSIS = "Early prediction of sepsis in the intensive care unit with gradient boosting"
SEPSIS_ABSTRACT = (
    "BACKGROUND: Sepsis is a leading cause of death in intensive care units. "
    "METHODS: We trained a gradient boosting model on 40,336 patients from three hospitals. "
    "RESULTS: The model predicted sepsis six hours ahead with an AUROC of 0.87. "
    "CONCLUSIONS: Early warning is feasible with routinely collected data."
)
RETINA = "Müller's retinal foundation model for diabetic retinopathy grading"
RETINA_ABSTRACT = (
    "We present a foundation model pretrained on 1.6 million retinal images. Fine-tuned on "
    "EyePACS, it grades diabetic retinopathy with a quadratic kappa of 0.91 & generalises "
    "across devices."
)

BIBTEX = r"""% Exported by Zotero
@string{miccai = "Medical Image Computing and Computer Assisted Intervention (MICCAI)"}

@inproceedings{xing2024segmamba,
  title = {{SegMamba}: Long-range {Sequential} Modeling {M}amba for {3D} Medical
           Image Segmentation},
  author = {Xing, Zhaohu and Ye, Tian and Yang, Yijun and Liu, Guang and Zhu, Lei},
  booktitle = miccai,
  year = {2024},
  doi = {10.1007/978-3-031-72111-3_54},
  eprint = {2401.13560},
  archiveprefix = {arXiv},
  keywords = {Mamba, segmentation; 3D},
  abstract = {The Transformer architecture has shown a remarkable ability in modeling global
              relationships. We introduce SegMamba, a novel 3D medical image segmentation model,
              designed to capture long-range dependencies within whole volume features.
              Experiments on the {BraTS2023} dataset show that SegMamba reaches a Dice score of
              91.3\% while being 50\% faster.}
}

@article{muller2022retina,
  title = {M{\"u}ller's retinal foundation model for diabetic retinopathy grading},
  author = {M{\"u}ller, J{\"o}rg and Sch\"{o}n, J{\'e}r{\^o}me and Wang, Li},
  journal = {Nature Medicine},
  year = 2022,
  pmid = {35000001},
  abstract = {We present a foundation model pretrained on 1.6 million retinal images.
              Fine-tuned on {EyePACS}, it grades diabetic retinopathy with a quadratic kappa of
              0.91 \& generalises across devices.}
}

@article{noabstract2021,
  title = {A paper whose export has no abstract},
  author = {Doe, Jane},
  year = {2021}
}
"""

RIS = """TY  - JOUR
AU  - Wang, Li
AU  - Chen, Mei
TI  - Early prediction of sepsis in the intensive care unit
  with gradient boosting
T2  - Critical Care Medicine
PY  - 2023/05/01/
DO  - 10.1097/CCM.0000000000005999
AB  - BACKGROUND: Sepsis is a leading cause of death in intensive care units.
METHODS: We trained a gradient boosting model on 40,336 patients from three hospitals.
RESULTS: The model predicted sepsis six hours ahead with an AUROC of 0.87.
CONCLUSIONS: Early warning is feasible with routinely collected data.
KW  - sepsis
KW  - machine learning
N1  - PMID: 37000002
ER  - 

TY  - CONF
TI  - A conference paper without an abstract
AU  - Doe, Jane
PY  - 2020
ID  - doe2020
ER  - 
"""

PUBMED = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2024//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_240101.dtd">
<PubmedArticleSet>
 <PubmedArticle>
  <MedlineCitation Status="MEDLINE" Owner="NLM">
   <PMID Version="1">37000002</PMID>
   <Article PubModel="Print-Electronic">
    <Journal>
     <JournalIssue CitedMedium="Internet"><Volume>51</Volume>
      <PubDate><Year>2023</Year><Month>May</Month></PubDate>
     </JournalIssue>
     <Title>Critical Care Medicine</Title>
     <ISOAbbreviation>Crit Care Med</ISOAbbreviation>
    </Journal>
    <ArticleTitle>Early prediction of sepsis in the intensive care unit with gradient boosting</ArticleTitle>
    <ELocationID EIdType="doi" ValidYN="Y">10.1097/CCM.0000000000005999</ELocationID>
    <Abstract>
     <AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">Sepsis is a leading cause of death in intensive care units.</AbstractText>
     <AbstractText Label="METHODS" NlmCategory="METHODS">We trained a gradient boosting model on 40,336 patients from three hospitals.</AbstractText>
     <AbstractText Label="RESULTS" NlmCategory="RESULTS">The model predicted sepsis six hours ahead with an <i>AUROC</i> of 0.87.</AbstractText>
     <AbstractText Label="CONCLUSIONS" NlmCategory="CONCLUSIONS">Early warning is feasible with routinely collected data.</AbstractText>
    </Abstract>
    <AuthorList CompleteYN="Y">
     <Author ValidYN="Y"><LastName>Wang</LastName><ForeName>Li</ForeName><Initials>L</Initials></Author>
     <Author ValidYN="Y"><LastName>Chen</LastName><ForeName>Mei</ForeName><Initials>M</Initials></Author>
    </AuthorList>
   </Article>
   <KeywordList Owner="NOTNLM"><Keyword MajorTopicYN="N">sepsis</Keyword><Keyword MajorTopicYN="N">machine learning</Keyword></KeywordList>
  </MedlineCitation>
  <PubmedData>
   <ArticleIdList>
    <ArticleId IdType="pubmed">37000002</ArticleId>
    <ArticleId IdType="doi">10.1097/CCM.0000000000005999</ArticleId>
   </ArticleIdList>
  </PubmedData>
 </PubmedArticle>
 <PubmedArticle>
  <MedlineCitation Status="PubMed-not-MEDLINE" Owner="NLM">
   <PMID Version="1">37000003</PMID>
   <Article PubModel="Print">
    <Journal><JournalIssue><PubDate><MedlineDate>2021 Jan-Feb</MedlineDate></PubDate></JournalIssue>
     <Title>Journal of Letters</Title></Journal>
    <ArticleTitle>A letter without an abstract.</ArticleTitle>
    <AuthorList><Author><CollectiveName>The Sepsis Consortium</CollectiveName></Author></AuthorList>
   </Article>
  </MedlineCitation>
 </PubmedArticle>
</PubmedArticleSet>
"""

ARXIV = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <id>https://arxiv.org/api/query</id>
  <title type="html">ArXiv Query: search_query=all:segmamba</title>
  <updated>2024-06-01T00:00:00-04:00</updated>
  <opensearch:totalResults>3</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/abs/2401.13560v1</id>
    <updated>2024-01-24T16:17:01Z</updated>
    <published>2024-01-24T16:17:01Z</published>
    <title>SegMamba: Long-range Sequential Modeling Mamba For 3D Medical Image
  Segmentation (first version)</title>
    <summary>  An early version of the abstract.
</summary>
    <author><name>Zhaohu Xing</name></author>
    <link href="http://arxiv.org/abs/2401.13560v1" rel="alternate" type="text/html"/>
    <category term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/2401.13560v3</id>
    <updated>2024-05-10T09:00:00Z</updated>
    <published>2024-01-24T16:17:01Z</published>
    <title>SegMamba: Long-range Sequential Modeling Mamba for 3D Medical Image
  Segmentation</title>
    <summary>  The Transformer architecture has shown a remarkable ability in modeling global
relationships. We introduce SegMamba, a novel 3D medical image segmentation model, designed to
capture long-range dependencies within whole volume features. Experiments on the BraTS2023
dataset show that SegMamba reaches a Dice score of 91.3% while being 50% faster.
</summary>
    <author><name>Zhaohu Xing</name></author>
    <author><name>Tian Ye</name></author>
    <arxiv:doi>10.1007/978-3-031-72111-3_54</arxiv:doi>
    <arxiv:journal_ref>MICCAI 2024</arxiv:journal_ref>
    <link href="http://arxiv.org/abs/2401.13560v3" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2401.13560v3" rel="related" type="application/pdf"/>
    <arxiv:primary_category term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CV" scheme="http://arxiv.org/schemas/atom"/>
    <category term="eess.IV" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/2401.13560v2</id>
    <updated>2024-02-01T10:00:00Z</updated>
    <published>2024-01-24T16:17:01Z</published>
    <title>SegMamba (second version)</title>
    <summary>The second version of the abstract.</summary>
    <author><name>Zhaohu Xing</name></author>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/2312.00001v1</id>
    <updated>2023-12-01T10:00:00Z</updated>
    <published>2023-12-01T10:00:00Z</published>
    <title>Vision-language pretraining for chest radiographs</title>
    <summary>We pretrain a vision-language model on 377,110 chest radiographs and their reports and
evaluate zero-shot classification on five benchmarks.</summary>
    <author><name>Ana García</name></author>
    <author><name>Wei Zhang</name></author>
  </entry>
</feed>
"""

CSL_JSON = """[
  {
    "id": "http://zotero.org/users/1/items/ABCD1234",
    "type": "article-journal",
    "title": "Müller's retinal foundation model for diabetic retinopathy grading",
    "container-title": "Nature Medicine",
    "abstract": "We present a foundation model pretrained on 1.6 million retinal images. Fine-tuned on EyePACS, it grades diabetic retinopathy with a quadratic kappa of 0.91 & generalises across devices.",
    "author": [
      {"family": "Müller", "given": "Jörg"},
      {"family": "Schön", "given": "Jérôme"},
      {"family": "Wang", "given": "Li"}
    ],
    "issued": {"date-parts": [["2022", 3, 14]]},
    "PMID": "35000001",
    "keyword": "retina, foundation model"
  },
  {
    "id": "http://zotero.org/users/1/items/EFGH5678",
    "type": "article",
    "title": "SegMamba: Long-range Sequential Modeling Mamba for 3D Medical Image Segmentation",
    "publisher": "arXiv",
    "number": "arXiv:2401.13560",
    "DOI": "10.48550/arXiv.2401.13560",
    "URL": "http://arxiv.org/abs/2401.13560",
    "abstract": "The Transformer architecture has shown a remarkable ability in modeling global relationships.",
    "author": [{"family": "Xing", "given": "Zhaohu"}, {"literal": "The SegMamba Team"}],
    "issued": {"date-parts": [[2024, 1, 24]]}
  },
  {
    "id": "ITEM-3",
    "type": "webpage",
    "title": "A web page without an abstract",
    "issued": {"raw": "2019"}
  }
]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
